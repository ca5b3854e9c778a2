"""tools/analysis_tools: benchmark.py end to end, get_flops' fusion-layer
count against the hand formula, and the literal/unimodal counterparts.

No timing assertions: the numbers depend on the machine.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools', 'analysis_tools')
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import get_flops  # noqa: E402
import model_counterparts as mc  # noqa: E402

HEAD = ("decode_head=dict(type='SegFormerMLPHead', in_channels={dims}, "
        "channels=32, num_classes=5, norm_cfg=dict(type='BN', "
        "requires_grad=True), align_corners=False, loss_decode=dict("
        "type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True))")
TINY_MIT = (
    "custom_imports = dict(imports=['geminifusion_mmseg'], "
    "allow_failed_imports=False)\n"
    "model = dict(type='MultiModalEncoderDecoder', "
    "backbone=dict(type='GeminiFusionMiT', arch=dict(embed_dims=(16, 32, 80, "
    "128), depths=(1, 1, 1, 1)), drop_path_rate=0.1), " +
    HEAD.format(dims=[16, 32, 80, 128]) +
    ", train_cfg=dict(), test_cfg=dict(mode='whole'))\n")
TINY_SWIN = ("custom_imports = dict(imports=['geminifusion_mmseg'], "
             "allow_failed_imports=False)\n"
             "model = dict(type='MultiModalEncoderDecoder', "
             "backbone=dict(type='GeminiFusionSwin', arch=dict(embed_dims=32, "
             "depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 8], window_size=4), "
             "drop_path_rate=0.1), " + HEAD.format(dims=[32, 64, 128, 256]) +
             ", train_cfg=dict(), test_cfg=dict(mode='whole'))\n")


@pytest.fixture
def tiny_mit(tmp_path):
    path = tmp_path / 'tiny_mit.py'
    path.write_text(TINY_MIT)
    return str(path)


@pytest.fixture
def tiny_swin(tmp_path):
    path = tmp_path / 'tiny_swin.py'
    path.write_text(TINY_SWIN)
    return str(path)


def test_benchmark_end_to_end(tiny_mit, tmp_path):
    out_json = tmp_path / 'bench.json'
    cmd = [
        sys.executable,
        osp.join(TOOLS, 'benchmark.py'), tiny_mit, '--img-size', '64', '96',
        '--batch-size', '2', '--repeats', '1', '--warmup', '0',
        '--memory-steps', '1', '--threads', '1', '--device', 'cpu', '--json',
        str(out_json)
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for label in mc.KIND_LABELS.values():
        rows = [ln for ln in out.splitlines() if ln.startswith(f'| {label}')]
        assert len(rows) == 1, (label, out)
        cells = [c.strip() for c in rows[0].strip('|').split('|')]
        assert len(cells) == 7
        assert all(c != '-' for c in cells[1:6]), rows[0]
    assert 'training step speed-up (b/a)' in out
    assert 'training step-time ratio (a/c)' in out
    assert 'FLOPs ratio (a/c)' in out
    assert 'GeminiFusion layers alone' in out
    assert '-> PASSED' in out
    results = json.loads(out_json.read_text())
    assert results['sanity']['passed']
    assert results['sanity']['max_rel_diff'] < 1e-4
    assert set(results['models']) == {
        f'{k}/{m}'
        for k in mc.KINDS
        for m in ('train', 'infer')
    }
    for r in results['models'].values():
        assert r['median_s'] > 0 and r['peak_mib'] > 0
    assert results['flops']['fused']['forward'] > \
        results['flops']['unimodal']['forward'] > 0


def test_benchmark_takes_config_checkpoint_and_loads_the_weights(
        tiny_mit, tmp_path):
    """mmseg's ``CONFIG CHECKPOINT`` form; the checkpoint is optional."""
    import benchmark
    cfg = mc.load_config(tiny_mit)
    torch.manual_seed(7)
    trained = mc.build_fused(cfg)
    ckpt = str(tmp_path / 'trained.pth')
    torch.save({'state_dict': trained.state_dict(), 'meta': {}}, ckpt)
    assert benchmark.parse_args([tiny_mit, '--repeats', '2']).checkpoint \
        is None
    args = benchmark.parse_args([tiny_mit, ckpt, '--repeats', '2'])
    assert (args.checkpoint, args.repeats) == (ckpt, 2)
    loaded = mc.build('fused', cfg, ckpt).state_dict()
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert not torch.equal(
        mc.build('fused', cfg).state_dict()['decode_head.conv_seg.weight'],
        trained.state_dict()['decode_head.conv_seg.weight'])
    # the whole tool on those weights, (b) built from them
    proc = subprocess.run([
        sys.executable,
        osp.join(TOOLS, 'benchmark.py'), tiny_mit, ckpt, '--img-size', '64',
        '96', '--batch-size', '1', '--repeats', '1', '--warmup', '0',
        '--memory-steps', '1', '--threads', '1', '--device', 'cpu', '--modes',
        'infer', '--no-unimodal', '--no-fusion-layer', '--no-flops',
        '--isolation', 'none'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f'weights of (a)/(b): {ckpt}' in proc.stdout
    assert '-> PASSED' in proc.stdout


@pytest.mark.parametrize('channels,tokens,batch,heads', [(32, 7, 2, 8),
                                                         (64, 5, 1, 4)])
def test_fusion_layer_flops_match_hand_formula(channels, tokens, batch, heads):
    check = get_flops.check_fusion_layer(channels, tokens, batch, heads)
    assert check['ok'], check
    # ours: 8 C^2 multiply-adds per token and modality (+ 2 C^2 for the
    # noise projections); the literal layer: 9 C^2 + 4 C
    L, C = batch * tokens, channels
    assert check['counted'] == 2 * 2 * (8 * L * C * C + 2 * C * C)
    assert check['literal_counted'] == 2 * 2 * L * (9 * C * C + 4 * C)


def test_grouped_conv_backward_flops():
    """torch's formula counts a depth-wise weight gradient as dense."""
    conv = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
    x = torch.randn(2, 16, 10, 12, requires_grad=True)
    forward = mc.count_flops(lambda: conv(x))
    assert forward == 2 * 2 * 16 * 10 * 12 * 9
    assert mc.count_flops(lambda: conv(x).sum().backward()) == 3 * forward


def test_get_flops_main(tiny_mit, capsys):
    assert get_flops.main([tiny_mit, '--shape', '64', '96']) == 0
    out = capsys.readouterr().out
    assert '(a) ours, fused' in out and '(c) unimodal RGB-only' in out
    assert 'fused / unimodal: forward' in out
    assert '(OK)' in out and 'MISMATCH' not in out


def test_get_flops_fusion_last_k_rows(tiny_mit, capsys):
    """One row per k (the paper's Table 8 sweep): parameters and FLOPs
    fall with k, the fusion layers' count is k."""
    assert get_flops.main(
        [tiny_mit, '--shape', '64', '96', '--fusion-last-k', '4', '2',
         '0']) == 0
    out = capsys.readouterr().out
    rows = [
        line.strip('|').split('|') for line in out.splitlines()
        if line.startswith('| ') and line.split('|')[1].strip().isdigit()
    ]
    assert [int(r[0]) for r in rows] == [4, 2, 0]
    params = [float(r[1]) for r in rows]
    gflops = [float(r[2]) for r in rows]
    assert params[0] > params[1] > params[2]
    assert gflops[0] > gflops[1] > gflops[2]
    assert [int(r[3]) for r in rows] == [4, 2, 0]
    assert 'OK' in out and 'MISMATCH' not in out
    with pytest.raises(SystemExit):
        get_flops.parse_args([tiny_mit, '--fusion-last-k', '2', '--literal'])


@pytest.mark.parametrize('config', ['tiny_mit', 'tiny_swin'])
def test_literal_counterpart_computes_the_same_function(config, request):
    cfg = mc.load_config(request.getfixturevalue(config))
    fused = mc.build('fused', cfg).eval()
    literal = mc.build('literal', cfg).eval()
    unimodal = mc.build('unimodal', cfg).eval()
    x, labels = mc.make_batch(2, (45, 61), 5)
    with torch.no_grad():
        ours = fused._branch_logits(x)
        ref = literal([x[:, :3].contiguous(), x[:, 3:].contiguous()])
        rgb = unimodal(x[:, :3].contiguous(), mode='tensor')
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert rgb.shape == ours[0].shape
    # every fused parameter has its literal partner (and back)
    mapped = {mc.literal_key_to_fused(k) for k in literal.state_dict()}
    assert mapped == set(fused.state_dict())
    # (c): the same backbone architecture on 3 channels, mmseg's own class
    assert type(unimodal.backbone).__name__ in ('MixVisionTransformer',
                                                'SwinTransformer')
    assert unimodal.decode_head.in_channels == fused.decode_head.in_channels
    loss_fn, _ = mc.step_functions('literal', mc.set_train(literal), x, labels)
    assert torch.isfinite(loss_fn())


def test_oracle_found_before_another_tests_package(tmp_path):
    """mmsegmentation's wheel installs a top-level ``tests`` package; the
    tools import the oracle from the package (``geminifusion_mmseg.testing``)
    and never from a ``tests`` package, so another one first on the path
    (as with PYTHONPATH) changes nothing."""
    decoy = tmp_path / 'site' / 'tests'
    decoy.mkdir(parents=True)
    (decoy / '__init__.py').write_text('')
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / 'site'), REPO]))
    code = ('import model_counterparts, '
            'geminifusion_mmseg.testing.literal_fusion as m; '
            'print(m.__file__)')
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=TOOLS,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith(
        osp.join(REPO, 'geminifusion_mmseg', 'testing'))


@pytest.mark.parametrize(
    'extra',
    [['--device', 'cpu'], ['--device', 'cuda', '--precision', 'bf16']])
def test_cuda_graphs_option_needs_cuda_fp32(tiny_mit, extra, capsys):
    import benchmark
    with pytest.raises(SystemExit):
        benchmark.parse_args([tiny_mit, '--cuda-graphs'] + extra)
    assert '--cuda-graphs needs --device cuda' in capsys.readouterr().err


def test_benchmark_inference_table(tiny_mit, capsys, tmp_path):
    """benchmark_inference.py: one row per candidate and per k, ratios
    that parse, fp32 agreeing with itself (no timing asserts)."""
    import benchmark_inference
    out_json = tmp_path / 'lat.json'
    assert benchmark_inference.main([
        tiny_mit, '--candidates', 'bf16', '--fusion-last-k', '0', '--rounds',
        '1', '--shape', '64', '96', '--json',
        str(out_json)
    ]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:6]]
        for line in out.splitlines() if line.startswith('| ') and 'x |' in line
    }
    assert list(rows) == ['fp32', 'bf16', 'fp32, fusion_last_k=0']
    for name, (ms, ratio, paired, agree) in rows.items():
        assert float(ms) > 0 and float(ratio.rstrip('x')) > 0
        assert float(paired.rstrip('x')) > 0
    assert rows['fp32'][1] == '1.00x' and rows['fp32'][3] == '100.00%'
    assert 90 <= float(rows['bf16'][3].rstrip('%')) <= 100
    assert rows['fp32, fusion_last_k=0'][3] == '—'
    assert len(json.loads(out_json.read_text())['rows']) == 3
    with pytest.raises(SystemExit):
        benchmark_inference.parse_args([tiny_mit, '--candidates', 'int8'])

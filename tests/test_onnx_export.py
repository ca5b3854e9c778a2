"""ONNX export (``geminifusion_mmseg.deployment``,
``tools/deployment/pytorch2onnx.py``) and ONNX Runtime inference
(``geminifusion_mmseg.apis.inference_onnx_model``): parity with PyTorch.

Tiny random-weight models, odd input sizes, static and dynamic shapes;
MiT and Swin (window padding and shift masks at other sizes than the
export size).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

# after the importorskip calls above
# isort: off
from geminifusion_mmseg.apis import (  # noqa: E402
    inference_model, inference_onnx_model, init_model, init_onnx_model,
    read_onnx_metadata)
from geminifusion_mmseg.datasets.transforms.loading import (  # noqa: E402
    encode_depth)
from geminifusion_mmseg.deployment import (  # noqa: E402
    DeployableSegmentor, dynamic_trace_size, export_onnx, preprocess_spec,
    verify_onnx)
from tests.helpers.tiny_configs import (  # noqa: E402
    REPO, save_checkpoint, write_tiny_config, write_tiny_deliver_config)
# isort: on

MIT_BASE = ('configs/geminifusion/'
            'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py')
SWIN_BASE = ('configs/geminifusion/'
             'geminifusion_swin-t_3xb2-300e_nyudv2-480x640.py')
# no test-time resize: the graph sees the input size, as inference_model
NO_RESIZE = """
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='PackSegInputs')]))
"""
SWIN_TINY = """
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=[2, 2, 2, 2],
                  num_heads=[1, 2, 4, 8], window_size=7),
        fusion_num_heads=1, drop_path_rate=0.0, init_cfg=None),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=32))
"""


def _swin_config(path):
    text = (f'_base_ = [{osp.join(REPO, SWIN_BASE)!r}]\n' + SWIN_TINY +
            NO_RESIZE)
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def _mit_config(tmp_path, extra=''):
    return write_tiny_config(
        str(tmp_path / 'mit_tiny.py'),
        MIT_BASE,
        str(tmp_path / 'data'),
        extra=NO_RESIZE + extra,
        sr_ratios=(4, 2, 1, 1))


def _run_script(script, *args, timeout=600):
    """Run a repository script (path relative to the repository) with
    ``args``; returns the completed process (output captured)."""
    return subprocess.run(
        [sys.executable, osp.join(REPO, script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout)


@pytest.fixture(scope='module')
def mit_dynamic(tmp_path_factory):
    """A tiny MiT exported with dynamic shapes at an odd size (97x131)."""
    tmp = tmp_path_factory.mktemp('mit_dyn')
    torch.manual_seed(0)
    model = init_model(_mit_config(tmp))
    path = str(tmp / 'mit.onnx')
    info = export_onnx(
        model, path, shape=(97, 131), dynamic=True, branches=True)
    return model, path, info


def assert_same_prediction(got, ref, branches):
    """ONNX Runtime against PyTorch: logits within 1e-4 of their scale, the
    same ensemble prediction, >= 99.9% of each branch's pixels."""
    scale = ref.seg_logits.data.abs().max()
    assert (got.seg_logits.data - ref.seg_logits.data).abs().max() \
        <= 1e-4 * scale
    assert torch.equal(got.pred_sem_seg.data, ref.pred_sem_seg.data)
    for name in branches:
        key = f'pred_sem_seg_{name}'
        agree = (got.get(key).data == ref.get(key).data).float().mean()
        assert agree >= 0.999


def test_mit_dynamic_export_parity(mit_dynamic):
    model, path, info = mit_dynamic
    onnx.checker.check_model(path, full_check=True)
    proto = onnx.load(path)
    inputs = {i.name: i for i in proto.graph.input}
    rgb_t = inputs['rgb'].type.tensor_type
    assert rgb_t.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param
            for d in rgb_t.shape.dim[:3]] == ['batch', 'height', 'width']
    assert rgb_t.shape.dim[3].dim_value == 3
    assert inputs['depth'].type.tensor_type.elem_type == \
        onnx.TensorProto.UINT16
    assert [o.name for o in proto.graph.output
            ] == ['logits', 'pred', 'logits_rgb', 'logits_depth']
    # metadata: class names and palette of the model
    meta = read_onnx_metadata(path)
    assert tuple(meta['classes']) == tuple(model.dataset_meta['classes'])
    assert meta['palette'] == [list(p) for p in model.dataset_meta['palette']]
    assert meta['preprocess']['depth_encoding'] == 'raw'
    assert meta['preprocess']['std'][3:] == [255.0] * 3

    # the export size at batch 2, a smaller and a larger odd size
    report = verify_onnx(
        path, model, sizes=[(2, 97, 131), (1, 64, 75), (1, 131, 97)])
    assert report.passed
    assert report.max_rel_error < 1e-4
    assert report.min_agreement >= 0.999


def test_runtime_folds_the_token_layout_into_conv_reorders(
        mit_dynamic, tmp_path):
    """In ONNX Runtime's optimised graph every convolution hands its output
    to the token layout inside its NCHWc output reorder
    (``channels_last=1``), with no Transpose pass over the map
    (``models/utils/token_maps.map_to_tokens``)."""
    _, path, _ = mit_dynamic
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / 'optimised.onnx')
    ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    nodes = onnx.load(opts.optimized_model_filepath).graph.node
    reorders = [n for n in nodes if n.op_type == 'ReorderOutput']
    assert len(reorders) >= 8  # the dwconvs and spatial reductions
    for node in reorders:
        attrs = {a.name: a.i for a in node.attribute}
        assert attrs.get('channels_last') == 1, node.name


def test_verify_detects_a_different_model(mit_dynamic):
    """The parity check fails for a graph that is not the model."""
    model, path, _ = mit_dynamic
    other = init_model(model.cfg)  # same config, other random weights
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    with pytest.raises(RuntimeError, match='parity failed'):
        verify_onnx(path, other, sizes=[(1, 64, 64)])


def test_onnx_runtime_api_matches_inference_model(mit_dynamic, tmp_path):
    """Same inputs (arrays, files, lists), same outputs as the PyTorch
    API, at the RGB input's size."""
    model, path, _ = mit_dynamic
    session = init_onnx_model(path)
    assert session.dataset_meta['classes'] == model.dataset_meta['classes']
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, (53, 71, 3)).astype(np.uint8)
    depth = rng.randint(0, 9000, (53, 71)).astype(np.uint16)
    ref = inference_model(model, rgb, depth)
    got = inference_onnx_model(session, rgb, depth)
    assert got.seg_logits.data.shape == ref.seg_logits.data.shape == (
        model.decode_head.num_classes, 53, 71)
    assert_same_prediction(got, ref, ('rgb', 'depth'))

    # files (16-bit depth PNG) and lists of pairs of two sizes
    rgb_file, depth_file = str(tmp_path / 'a.png'), str(tmp_path / 'a_d.png')
    cv2.imwrite(rgb_file, rgb[..., ::-1])
    cv2.imwrite(depth_file, depth)
    rgb2 = rng.randint(0, 256, (40, 44, 3)).astype(np.uint8)
    depth2 = rng.randint(0, 9000, (40, 44)).astype(np.uint16)
    outs = inference_onnx_model(session, [rgb_file, rgb2],
                                [depth_file, depth2])
    assert isinstance(outs, list) and len(outs) == 2
    assert torch.equal(outs[0].pred_sem_seg.data, ref.pred_sem_seg.data)
    ref2 = inference_model(model, rgb2, depth2)
    assert outs[1].pred_sem_seg.data.shape == (1, 40, 44)
    assert torch.equal(outs[1].pred_sem_seg.data, ref2.pred_sem_seg.data)


def test_depth_of_another_size_follows_the_recorded_policy(mit_dynamic):
    """The graph takes one size for both inputs; a depth map of another
    size is brought to it on the host by the config's size_mismatch,
    recorded at export ('stretch' for the NYUDv2 zoo configs)."""
    model, path, _ = mit_dynamic
    session = init_onnx_model(path)
    meta = read_onnx_metadata(path)['preprocess']
    assert meta['size_mismatch'] == session.size_mismatch == 'stretch'
    rng = np.random.RandomState(2)
    rgb = rng.randint(0, 256, (45, 61, 3)).astype(np.uint8)
    yy, xx = np.mgrid[0:53, 0:71]  # a larger depth frame, smooth
    depth = (1500 + 60 * yy + 35 * xx + rng.randint(0, 50, yy.shape)).astype(
        np.uint16)

    def compare(got, ref, rel, agreement):
        assert got.seg_logits.data.shape[1:] == rgb.shape[:2]
        scale = ref.seg_logits.data.abs().max()
        assert (got.seg_logits.data -
                ref.seg_logits.data).abs().max() <= rel * scale
        same = (got.pred_sem_seg.data == ref.pred_sem_seg.data).float()
        assert same.mean() >= agreement

    # stretched on the host (bilinear, rounded to uint16): PyTorch keeps
    # the stretched depth in float
    compare(
        inference_onnx_model(session, rgb, depth),
        inference_model(model, rgb, depth),
        rel=1e-3,
        agreement=0.99)

    # 'crop': the same centre crop as PyTorch, exact parity
    crop_model = init_model(
        model.cfg,
        cfg_options={'test_dataloader.dataset.size_mismatch': 'crop'})
    crop_model.load_state_dict(model.state_dict())
    session.size_mismatch = 'crop'
    compare(
        inference_onnx_model(session, rgb, depth),
        inference_model(crop_model, rgb, depth),
        rel=1e-4,
        agreement=1.0)
    with pytest.raises(ValueError, match=r'smaller than the RGB image'):
        inference_onnx_model(session, rgb, depth[:40])

    # 'error' (and models exported before the policy was recorded):
    # inference_model's rule, other aspect ratios refused
    session.size_mismatch = 'error'
    with pytest.raises(ValueError, match='aspect') as err:
        inference_onnx_model(session, rgb, depth[:20])
    assert '20x71' in str(err.value) and '45x61' in str(err.value)
    assert 'size_mismatch' in str(err.value)

    # the raw graph refuses inputs of two sizes, naming both and the fix
    with pytest.raises(ValueError) as err:
        session(rgb[None], depth[None])
    msg = str(err.value)
    assert '(1, 45, 61, 3)' in msg and '(1, 53, 71)' in msg
    assert 'inference_onnx_model' in msg and 'one size' in msg


def test_swin_static_export_parity_with_padding(tmp_path):
    """Swin, static graph at an odd size: patch padding, window padding at
    every stage, padded 2x2 merges and the shift masks, as in PyTorch."""
    torch.manual_seed(0)
    model = init_model(_swin_config(tmp_path / 'swin_tiny.py'))
    # 129 pads at every padding point of a window-7 Swin
    assert dynamic_trace_size(model, 129, 129) == (129, 129)
    path = str(tmp_path / 'swin_static.onnx')
    export_onnx(model, path, shape=(129, 131))
    report = verify_onnx(path, model)
    assert [r['size'] for r in report.rows] == ['1x129x131']
    assert report.passed, report.format()


def test_dynamic_trace_size_pads_everywhere():
    """The trace size of a dynamic Swin export takes every padding branch
    (patch 4, window 7 / 12, three 2x2 merges); MiT traces as asked."""
    from geminifusion_mmseg.deployment.onnx_export import _needs_all_padding
    assert _needs_all_padding(129, 7, 4)
    for s, window in ((128, 7), (224, 7), (100, 7), (132, 7), (384, 12)):
        assert not _needs_all_padding(s, window, 4)
    for s, window in ((100, 7), (480, 7), (640, 7), (480, 12), (640, 12)):
        t = s
        while not _needs_all_padding(t, window, 4):
            t += 1
        side = -(-t // 4)
        sides = [side]
        for _ in range(3):
            sides.append(-(-sides[-1] // 2))
        assert t % 4 and all(x % window for x in sides)
        assert all(x % 2 for x in sides[:3])


@pytest.mark.skipif(
    not os.environ.get('GEMINIFUSION_SLOW_TESTS'),
    reason='about 4-5 CPU minutes (torch.export symbolic shapes of Swin); '
    'set GEMINIFUSION_SLOW_TESTS=1')
def test_swin_dynamic_export_valid_at_other_sizes(tmp_path):
    """Swin: window padding, patch-merging padding and shift masks follow
    the runtime size of a dynamic graph (exported at 100x124, run at sizes
    with other padding patterns, including none)."""
    torch.manual_seed(0)
    model = init_model(_swin_config(tmp_path / 'swin_tiny.py'))
    trace = dynamic_trace_size(model, 100, 124)
    assert trace != (100, 124)  # a size that pads at every stage
    path = str(tmp_path / 'swin.onnx')
    export_onnx(model, path, shape=(100, 124), dynamic=True)
    report = verify_onnx(
        path,
        model,
        sizes=[(1, 100, 124), (2, 132, 164), (1, 97, 111), (1, 224, 224)])
    assert report.passed, report.format()


def test_fp16_export_runs_on_onnx_runtime_cpu(tmp_path):
    """--fp16: float16 network, float32 inputs/outputs; checked against
    the fp32 PyTorch model with the documented looser limits."""
    from geminifusion_mmseg.deployment import FP16_TOLERANCE
    model = init_model(_mit_config(tmp_path))
    path = str(tmp_path / 'half.onnx')
    export_onnx(model, path, shape=(64, 80), fp16=True)
    assert next(model.parameters()).dtype == torch.float32  # restored
    proto = onnx.load(path)
    types = {i.data_type for i in proto.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    out_types = [o.type for o in sess.get_outputs()]
    assert out_types == ['tensor(float)', 'tensor(int64)']
    report = verify_onnx(path, model)
    assert report.tolerance == FP16_TOLERANCE
    assert report.passed, report.format()
    assert report.max_rel_error > 0  # really float16


def test_static_export_and_cli(tmp_path):
    """The command line: static shape at an odd size, float32 depth,
    bicubic logits upsampling (``test_cfg.resize_mode``) as matrix
    products, --verify passes (against ``F.interpolate``), the graph
    refuses other sizes."""
    cfg = _mit_config(tmp_path)
    out = str(tmp_path / 'static.onnx')
    proc = _run_script('tools/deployment/pytorch2onnx.py', cfg,
                       '--random-weights', '--out', out, '--shape', '75', '99',
                       '--verify', '--depth-dtype', 'float32', '--cfg-options',
                       'model.test_cfg.resize_mode=bicubic')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = proc.stdout + proc.stderr
    assert 'PASS 1x75x99' in log and 'onnx.checker passed' in log
    sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    shapes = {i.name: (i.shape, i.type) for i in sess.get_inputs()}
    assert shapes['rgb'] == ([1, 75, 99, 3], 'tensor(uint8)')
    assert shapes['depth'] == ([1, 75, 99], 'tensor(float)')
    meta = json.loads(
        dict((p.key, p.value)
             for p in onnx.load(out).metadata_props)['geminifusion.contract'])
    assert meta['shape'] == [1, 75, 99] and not meta['dynamic']
    assert read_onnx_metadata(out)['preprocess']['resize_mode'] == 'bicubic'
    graph = onnx.load(out).graph
    modes = [
        a.s for n in graph.node if n.op_type == 'Resize' for a in n.attribute
        if a.name == 'mode'
    ]
    # the bicubic logits upsampling runs as two MatMuls (ONNX Runtime's
    # cubic Resize is slow); the head's bilinear upsamplings stay Resize
    assert b'cubic' not in modes and modes.count(b'linear') == 3
    assert graph.node[-1].op_type == 'ArgMax'
    with pytest.raises(Exception, match='dimensions'):
        sess.run(
            None, {
                'rgb': np.zeros((1, 76, 99, 3), np.uint8),
                'depth': np.zeros((1, 76, 99), np.float32)
            })


@pytest.mark.parametrize('encoding,kwargs', [
    ('raw', {}),
    ('scale', dict(depth_scale=0.0255)),
    ('clip', dict(depth_range=[500, 4000])),
    ('hha', {}),
])
def test_in_graph_preprocessing_matches_the_loader(tmp_path, encoding, kwargs):
    """The graph's encoding + normalisation equals the data pipeline's
    (``encode_depth``, then the data preprocessor's mean/std)."""
    loader = dict(
        type='LoadRGBDImageFromFile', depth_encoding=encoding, **kwargs)
    extra = f"""
test_dataloader = dict(dataset=dict(pipeline=[
    {loader!r},
    dict(type='PackSegInputs')]))
"""
    model = init_model(_mit_config(tmp_path, extra))
    spec = preprocess_spec(model)
    assert spec.depth_encoding == encoding
    wrapper = DeployableSegmentor(model, spec)
    rng = np.random.RandomState(0)
    rgb = rng.randint(0, 256, (2, 9, 11, 3)).astype(np.uint8)
    if encoding == 'hha':
        depth = rng.randint(0, 256, (2, 9, 11, 3)).astype(np.uint8)
    else:
        depth = rng.randint(0, 6000, (2, 9, 11)).astype(np.uint16)
    got = wrapper.encode(torch.from_numpy(rgb), torch.from_numpy(depth))
    pre = model.data_preprocessor
    for b in range(2):
        enc = encode_depth(depth[b], encoding, kwargs.get('depth_scale', 1.),
                           kwargs.get('depth_range'))
        img = np.concatenate([rgb[b].astype(np.float32), enc], axis=2)
        ref = (torch.from_numpy(img).permute(2, 0, 1) - pre.mean) / pre.std
        torch.testing.assert_close(got[b], ref, rtol=1e-6, atol=1e-6)


def test_unsupported_modes_say_what_is_supported(tmp_path):
    model = init_model(
        _mit_config(
            tmp_path, "model = dict(test_cfg=dict(mode='slide', "
            'crop_size=(32, 32), stride=(16, 16)))'))
    with pytest.raises(ValueError, match="only whole-image inference"):
        DeployableSegmentor(model, preprocess_spec(model))
    proc = _run_script(
        'tools/deployment/pytorch2onnx.py',
        model.cfg.filename,
        '--random-weights',
        '--out',
        str(tmp_path / 'x.onnx'),
        timeout=300)
    assert proc.returncode != 0
    assert 'only whole-image inference' in proc.stderr
    assert not osp.exists(tmp_path / 'x.onnx')


def test_demo_with_onnxruntime_backend(mit_dynamic, tmp_path):
    """demo/image_demo.py --backend onnxruntime draws the graph's
    prediction (config from the metadata: CONFIG is '-')."""
    _, path, _ = mit_dynamic
    rng = np.random.RandomState(1)
    rgb_file, depth_file = str(tmp_path / 'r.png'), str(tmp_path / 'd.png')
    cv2.imwrite(rgb_file, rng.randint(0, 256, (45, 61, 3)).astype(np.uint8))
    cv2.imwrite(depth_file, rng.randint(0, 9000, (45, 61)).astype(np.uint16))
    out = str(tmp_path / 'out.png')
    proc = _run_script(
        'demo/image_demo.py',
        rgb_file,
        depth_file,
        '-',
        path,
        '--backend',
        'onnxruntime',
        '--out-file',
        out,
        '--branch',
        'depth',
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    img = cv2.imread(out)
    assert img is not None and img.shape[0] >= 45


def test_spec_records_the_test_resize(tmp_path):
    """The zoo's ResizeShortSideToMultiple is recorded (applied on the host
    by inference_onnx_model); the depth encoding and the head's
    align_corners are read from the config."""
    cfg = write_tiny_config(
        str(tmp_path / 'zoo_tiny.py'), MIT_BASE, str(tmp_path / 'data'))
    model = init_model(cfg)
    spec = preprocess_spec(model)
    assert spec.resize_pipeline['type'] == 'ResizeShortSideToMultiple'
    assert spec.resize_pipeline['short_side'] == 480
    # the zoo's published protocol: bicubic logits
    assert spec.depth_encoding == 'raw' and spec.resize_mode == 'bicubic'
    assert spec.align_corners is False
    assert spec.to_dict()['mean'][:3] == pytest.approx(
        [123.675, 116.28, 103.53])
    assert spec.to_dict()['std'][3:] == [255.0] * 3


def test_k_modality_export_parity_and_runtime_api(tmp_path):
    """K = 3 (DeLiVER-like rgb + depth + event): one graph input per
    modality (uint8 frames), --verify parity through the command line,
    and inference_onnx_model on inference_model's dict of modalities
    (arrays, files, a low-resolution event map resized to RGB, a list of
    two sizes) gives the PyTorch prediction."""
    torch.manual_seed(0)
    cfg = write_tiny_deliver_config(
        str(tmp_path / 'rgbde_tiny.py'), str(tmp_path / 'data'))
    model = init_model(cfg)
    assert model.backbone.num_modalities == 3
    ckpt = save_checkpoint(model, tmp_path / 'rgbde.pth')
    out = str(tmp_path / 'rgbde.onnx')
    proc = _run_script('tools/deployment/pytorch2onnx.py', cfg, ckpt, '--out',
                       out, '--shape', '45', '61', '--dynamic-shape',
                       '--branches', '--verify')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'PASS 2x45x61' in proc.stdout + proc.stderr
    sess = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    inputs = {i.name: (len(i.shape), i.type) for i in sess.get_inputs()}
    # DeLiVER reads its modalities as stored ('image'): (B, H, W, 3) uint8
    assert inputs == dict(
        rgb=(4, 'tensor(uint8)'),
        depth=(4, 'tensor(uint8)'),
        event=(4, 'tensor(uint8)'))
    assert [o.name for o in sess.get_outputs()
            ] == ['logits', 'pred', 'logits_rgb', 'logits_fused']
    meta = read_onnx_metadata(out)
    assert meta['preprocess']['modalities'] == ['rgb', 'depth', 'event']
    report = verify_onnx(out, model, sizes=[(1, 37, 53)])
    assert report.passed
    assert report.max_rel_error < 1e-4
    assert report.min_agreement >= 0.999

    session = init_onnx_model(out)
    rng = np.random.RandomState(0)

    def sample(h, w, event_size):
        return dict(
            rgb=rng.randint(0, 256, (h, w, 3)).astype(np.uint8),
            depth=rng.randint(0, 256, (h, w, 3)).astype(np.uint8),
            event=rng.randint(0, 256, event_size).astype(np.uint8))

    def same(got, ref):
        assert got.seg_logits.data.shape == ref.seg_logits.data.shape
        assert_same_prediction(got, ref, ('rgb', 'fused'))

    # event at half resolution: resized to RGB (nearest), as the loader
    first = sample(45, 61, (23, 31))
    ref = inference_model(model, first)
    same(inference_onnx_model(session, first), ref)
    files = {}
    for name, img in first.items():
        files[name] = str(tmp_path / f'a_{name}.png')
        cv2.imwrite(files[name], img[..., ::-1] if img.ndim == 3 else img)
    second = sample(40, 44, (40, 44))
    outs = inference_onnx_model(session, [files, second])
    assert isinstance(outs, list) and len(outs) == 2
    same(outs[0], ref)
    same(outs[1], inference_model(model, second))
    with pytest.raises(ValueError, match=r"exactly \['rgb', 'depth', 'event"):
        inference_onnx_model(session, dict(rgb=first['rgb']))
    # a 16-bit frame for a uint8 input is refused, naming it and the range
    wide = dict(first, depth=first['depth'].astype(np.uint16) * 256)
    with pytest.raises(
            ValueError, match=r'depth has values outside the '
            r'uint8 range'):
        inference_onnx_model(session, wide)
    # the raw graph takes one size for all its inputs, naming each
    with pytest.raises(ValueError, match='one size for all its inputs') as err:
        session(
            rgb=first['rgb'][None],
            depth=first['depth'][None],
            event=first['event'][None])
    assert '(1, 23, 31)' in str(err.value)


def test_benchmark_tools_run(tmp_path):
    """tools/deployment/benchmark_onnx.py (a bicubic config: the baseline,
    the graph form run by PyTorch, ONNX Runtime; --profile) and
    benchmark_gemm.py print their tables; no timing assertions."""
    cfg = _mit_config(tmp_path)
    out = str(tmp_path / 'bench.json')
    proc = _run_script('tools/deployment/benchmark_onnx.py', cfg, '--shape',
                       '67', '91', '--repeats', '1', '--warmup', '0', '--onnx',
                       str(tmp_path / 'bench.onnx'), '--json', out,
                       '--profile')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out) as f:
        result = json.load(f)
    runs = result['runs']
    # --profile: milliseconds per operator of each runtime
    profile = result['profile_ms']
    assert set(profile) == {'pytorch', 'onnxruntime'}
    assert any('addmm' in op for op in profile['pytorch'])
    assert {'MatMul', 'ArgMax'} <= set(profile['onnxruntime'])
    assert 'profile onnxruntime:' in proc.stdout
    assert set(runs) == {'pytorch', 'pytorch_graph_form', 'onnxruntime'}
    assert runs['pytorch']['cpu_ratio'] == pytest.approx(1.0)
    for name in ('pytorch_graph_form', 'onnxruntime'):
        lo, hi = runs[name]['paired_ratio_range']
        assert lo <= runs[name]['paired_ratio'] <= hi
        assert runs[name]['max_rel_error'] < 1e-4
        assert runs[name]['agreement'] >= 0.999
    proc = _run_script(
        'tools/deployment/benchmark_gemm.py',
        '--shape',
        '64',
        '64',
        '--repeats',
        '1',
        '--width',
        '8',
        '16',
        '32',
        '64',
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    rows = [ln for ln in lines if ' x ' in ln and ln.split()[0].isdigit()]
    assert len(rows) == 12  # 3 shapes per stage
    assert 'ratio' in lines[-1]

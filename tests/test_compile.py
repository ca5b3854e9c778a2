"""The training fast path (``cfg.compile`` / ``tools/train.py --compile``):
torch.compile of backbone and head, its fallbacks, resume and checkpoints.

The end-to-end test compiles a tiny model with inductor; on a cold inductor
cache (first run on a machine) that takes a few minutes of C++ compilation,
later runs reuse the cache (``/tmp/torchinductor_$USER``).
"""
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from geminifusion_mmseg.engine.hooks import TorchCompileHook
from geminifusion_mmseg.utils import compile as gf_compile
from geminifusion_mmseg.utils.launch import ensure_compile_hook
from tests.helpers.tiny_configs import \
    tiny_quickstart_config as tiny_quickstart
from tests.helpers.training_runs import ENV, free_port, logged, train_cmd

# eager-identical random numbers (stochastic depth, head dropout) under
# inductor, so compiled and eager losses can be compared
# the backbone and the head (the CUDA default; the CPU one is the backbone)
COMPILE_CFG = ('compile = dict(options=dict(fallback_random=True))\n'
               "default_hooks['compile'] = dict(type='TorchCompileHook', "
               "targets=['backbone', 'decode_head'])\n")


def _tiny_model(backbone='mit'):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from tests.helpers.tiny_configs import REPO
    base = 'geminifusion_mit.py' if backbone == 'mit' else \
        'geminifusion_swin.py'
    cfg = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', base))
    if backbone == 'mit':
        cfg.model.backbone.arch = dict(
            embed_dims=(16, 32, 40, 64), depths=(1, 1, 1, 1))
        cfg.model.backbone.sr_ratios = (4, 2, 1, 1)
        cfg.model.decode_head.in_channels = [16, 32, 40, 64]
    else:
        # two blocks per stage: every stage has a shifted-window block
        cfg.model.backbone.arch = dict(
            embed_dims=16,
            depths=(2, 2, 2, 2),
            num_heads=(1, 2, 2, 4),
            window_size=4)
        cfg.model.decode_head.in_channels = [16, 32, 64, 128]
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.channels = 32
    return MODELS.build(cfg.model).train()


@pytest.mark.parametrize('backbone', ['mit', 'swin'])
def test_backbone_and_head_trace_without_graph_breaks(backbone):
    """dynamo captures the whole backbone (fusion layers and the custom
    autograd function of gelu_linear included) and the head as one graph
    each, with autograd on."""
    import torch._dynamo as dynamo
    model = _tiny_model(backbone)
    x = torch.randn(2, 6, 64, 64)
    dynamo.reset()
    ex = dynamo.explain(model.backbone)(x)
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), \
        ex.break_reasons
    feats = model.backbone(x)
    ex = dynamo.explain(model.decode_head)(list(feats))
    assert (ex.graph_count, ex.graph_break_count) == (1, 0), \
        ex.break_reasons
    dynamo.reset()


def test_compile_cfg_and_fallback_reasons(monkeypatch):
    norm = gf_compile.normalize_compile_cfg
    assert norm(None) is None and norm(False) is None
    assert norm(True) == {}
    assert norm(dict(mode='max-autotune')) == dict(mode='max-autotune')
    assert norm(dict(disable=True)) is None
    with pytest.raises(ValueError, match='unknown'):
        norm(dict(targets=['backbone']))

    reason = gf_compile.compile_unavailable_reason
    assert reason({}, 'cpu') is None  # this machine has g++
    assert reason(dict(backend='eager'), 'cpu') is None
    monkeypatch.setattr(gf_compile, 'MIN_TORCH', '99.0.0')
    assert 'too old' in reason({}, 'cpu')
    monkeypatch.setattr(gf_compile, 'MIN_TORCH', '2.2.0')

    import torch._inductor.cpp_builder as cpp_builder

    def no_compiler():
        raise RuntimeError('no compiler')

    monkeypatch.setattr(cpp_builder, 'get_cpp_compiler', no_compiler)
    assert 'C++ compiler' in reason({}, 'cpu')
    assert reason(dict(backend='aot_eager'), 'cpu') is None
    monkeypatch.setenv('GEMINIFUSION_DISABLE_COMPILE', '1')
    assert 'GEMINIFUSION_DISABLE_COMPILE' in reason({}, 'cpu')


def test_compile_modules_keeps_state_dict_keys_and_toggles():
    model = nn.Sequential()
    model.add_module('backbone', nn.Linear(3, 3))
    model.add_module('decode_head', nn.Linear(3, 2))
    keys = list(model.state_dict())
    gf_compile.compile_modules(model, ('backbone', 'decode_head'),
                               dict(backend='eager'))
    assert list(model.state_dict()) == keys
    assert model.backbone._compiled_call_impl is not None
    stash = {}
    gf_compile.set_compiled([model.backbone], False, stash)
    assert model.backbone._compiled_call_impl is None
    gf_compile.set_compiled([model.backbone], True, stash)
    assert model.backbone._compiled_call_impl is not None and not stash
    with pytest.raises(ValueError, match='not a submodule'):
        gf_compile.resolve_targets(model, ['neck'])


def test_ensure_compile_hook():
    from mmengine.config import Config
    cfg = Config(dict(compile=True, default_hooks=dict()))
    ensure_compile_hook(cfg)
    assert cfg.custom_hooks == [dict(type='TorchCompileHook')]
    ensure_compile_hook(cfg)  # once only
    assert len(cfg.custom_hooks) == 1
    cfg = Config(dict(default_hooks=dict(c=dict(type='TorchCompileHook'))))
    ensure_compile_hook(cfg)
    assert 'custom_hooks' not in cfg
    assert TorchCompileHook().targets is None
    assert gf_compile.default_targets('cuda') == ('backbone', 'decode_head')
    assert gf_compile.default_targets('cpu') == ('backbone', )


def _train(cfg, work_dir, *args, env=ENV):
    run = subprocess.run(
        train_cmd(cfg, work_dir, *args),
        env=env,
        cwd=osp.dirname(cfg),
        capture_output=True,
        text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout + run.stderr


def _losses(work_dir, iters):
    log = logged(work_dir)
    return [log[i]['loss'] for i in iters]


def test_compiled_training_matches_eager_and_resumes(tmp_path):
    """A real Runner (tools/train.py): compiled per-iteration losses equal
    the eager ones (same seed and init); resuming a compiled run from its
    checkpoint gives the uninterrupted compiled losses; checkpoint keys are
    the eager model's; without a usable compiler the run says why and
    trains eagerly."""
    cfg = tiny_quickstart(tmp_path, 'eager', max_iters=6, interval=3)
    ccfg = tiny_quickstart(
        tmp_path, 'compiled', max_iters=6, interval=3, extra=COMPILE_CFG)
    iters = range(1, 7)

    _train(cfg, tmp_path / 'eager')
    eager = _losses(tmp_path / 'eager', iters)

    out = _train(ccfg, tmp_path / 'compiled')
    assert '[compile] torch.compile(' in out
    assert 'of backbone, decode_head on cpu' in out
    assert 'Model has been "compiled"' not in out  # not mmengine's as well
    compiled = _losses(tmp_path / 'compiled', iters)
    assert compiled == pytest.approx(eager, rel=1e-5, abs=1e-6)

    ckpt = torch.load(
        tmp_path / 'compiled' / 'iter_6.pth',
        map_location='cpu',
        weights_only=False)
    assert not any('_orig_mod' in k for k in ckpt['state_dict'])
    ref = torch.load(
        tmp_path / 'eager' / 'iter_6.pth',
        map_location='cpu',
        weights_only=False)
    assert list(ckpt['state_dict']) == list(ref['state_dict'])

    resumed = tmp_path / 'resumed'
    os.makedirs(resumed)
    shutil.copy(tmp_path / 'compiled' / 'iter_3.pth', resumed)
    _train(ccfg, resumed, '--resume', str(resumed / 'iter_3.pth'))
    assert _losses(resumed, [4, 5, 6]) == pytest.approx(
        compiled[3:], rel=1e-5, abs=1e-6)

    # fallback: --compile where compilation is not available
    env = dict(ENV, GEMINIFUSION_DISABLE_COMPILE='1')
    out = _train(cfg, tmp_path / 'fallback', '--compile', env=env)
    assert 'torch.compile is not applied, training runs eagerly: ' \
        'GEMINIFUSION_DISABLE_COMPILE' in out
    assert _losses(tmp_path / 'fallback', iters) == pytest.approx(
        eager, rel=1e-6)


def test_compiled_two_process_gloo_training(tmp_path):
    """DDP (2 processes, gloo) with the compiled backbone and head: the
    compiled backward feeds DDP's gradient all-reduce, so both ranks end
    with the same weights, which the checkpoint holds under the eager keys.
    """
    from tests.helpers.tiny_configs import REPO
    cfg = tiny_quickstart(
        tmp_path,
        'dist',
        max_iters=6,
        interval=6,
        extra="custom_imports = dict(imports=['geminifusion_mmseg', "
        "'tests.helpers.probe_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='ParamChecksumHook')]\n" + COMPILE_CFG)
    wd = tmp_path / 'wd'
    env = dict(ENV, PYTHON=sys.executable, PORT=str(free_port()))
    run = subprocess.run([
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir',
        str(wd)
    ],
                         env=env,
                         cwd=tmp_path,
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert '[compile] torch.compile(' in out
    sums = [open(wd / f'checksum_rank{r}.txt').read().split() for r in (0, 1)]
    assert sums[0][0] == sums[1][0] == '2'
    assert float(sums[0][1]) == float(sums[1][1])
    ckpt = torch.load(wd / 'iter_6.pth', weights_only=True)
    assert not any('_orig_mod' in k for k in ckpt['state_dict'])


def test_gpu_fast_path_check_dry_run():
    """The GPU measurement script builds valid benchmark.py commands."""
    from tests.helpers.tiny_configs import REPO
    run = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'analysis_tools', 'gpu_fast_path_check.py'),
        '--dry-run', '--peak-fp32', '67', '--peak-bf16', '989'
    ],
                         env=ENV,
                         capture_output=True,
                         text=True,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [
        ln for ln in run.stdout.splitlines()
        if ln.startswith(('train-', 'infer-'))
    ]
    assert len(lines) == 2 + 4 * 2
    fp32 = lines[0]
    assert '--compile-compare' in fp32 and '--peak-tflops 67' in fp32
    assert '--precision bf16 --literal-precision fp32' in lines[1]


class _Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.decode_head = nn.Linear(4, 2)

    def forward(self, inputs):
        return self.decode_head(self.backbone(inputs))


def test_hook_compiles_for_training_only_and_falls_back():
    """before_run takes cfg.compile from mmengine, before_train compiles
    (CPU default: the backbone), validation runs eagerly, and with
    dynamic=False too many input sizes return to eager."""
    from types import SimpleNamespace

    from mmengine.config import Config
    model = _Segmentor()
    runner = SimpleNamespace(
        cfg=Config(dict(compile=dict(backend='eager', dynamic=False))),
        model=model)
    hook = TorchCompileHook(max_shapes=2)
    hook.before_run(runner)
    assert runner.cfg.compile is None  # mmengine does not compile train_step
    assert model.backbone._compiled_call_impl is None
    hook.before_train(runner)
    assert runner.cfg.compile == dict(backend='eager', dynamic=False)
    assert model.backbone._compiled_call_impl is not None
    assert model.decode_head._compiled_call_impl is None
    hook.before_val(runner)
    assert model.backbone._compiled_call_impl is None
    hook.after_val(runner)
    assert model.backbone._compiled_call_impl is not None
    model.train()
    for n in (1, 2, 2, 1):
        model(inputs=torch.randn(n, 4))
        assert model.backbone._compiled_call_impl is not None
    model(inputs=torch.randn(3, 4))  # a third size > max_shapes
    assert model.backbone._compiled_call_impl is None
    hook.after_run(runner)

    # without training (runner.test()): nothing compiled, cfg restored
    model = _Segmentor()
    runner = SimpleNamespace(cfg=Config(dict(compile=True)), model=model)
    hook = TorchCompileHook()
    hook.before_run(runner)
    hook.after_run(runner)
    assert runner.cfg.compile is True
    assert model.backbone._compiled_call_impl is None

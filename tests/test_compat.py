"""mmcv-lite support and weights-only checkpoint loading."""
import importlib.util
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from geminifusion_mmseg.utils import (CheckpointLoadError,
                                      has_compiled_mmcv_ops,
                                      load_external_checkpoint)
from geminifusion_mmseg.utils.mmcv_ops_fallback import (EXACT_OPS,
                                                        PROVIDED_OPS,
                                                        UNAVAILABLE_OPS)
from tests.helpers.tiny_configs import REPO
from tests.helpers.torch_only import load_in_torch_only_process

lite_only = pytest.mark.skipif(
    has_compiled_mmcv_ops(), reason='full mmcv installed: no fallback')


def _mmcv_reference_module():
    """mmcv's own pure-python point_sample.py, loaded from its file."""
    path = osp.join(osp.dirname(mmcv.__file__), 'ops', 'point_sample.py')
    spec = importlib.util.spec_from_file_location('_mmcv_point_sample', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lite_only
def test_mmseg_models_import_and_point_sample_is_exact():
    import mmcv.ops
    import mmseg.models  # noqa: F401  (imports mmcv.ops at import time)
    ref = _mmcv_reference_module()
    feats = torch.randn(2, 3, 7, 9)
    for shape in [(2, 11, 2), (2, 4, 5, 2)]:
        points = torch.rand(shape)
        for align in (False, True):
            expected = ref.point_sample(feats, points, align_corners=align)
            got = mmcv.ops.point_sample(feats, points, align_corners=align)
            assert torch.equal(got, expected)


@lite_only
def test_stand_in_provides_exactly_the_listed_names():
    import mmcv.ops
    public = {n for n in dir(mmcv.ops) if not n.startswith('_')}
    assert public == set(PROVIDED_OPS) == {
        'point_sample', 'sigmoid_focal_loss'
    }
    assert set(EXACT_OPS) | set(UNAVAILABLE_OPS) == set(PROVIDED_OPS)
    for name in UNAVAILABLE_OPS:
        op = getattr(mmcv.ops, name)
        with pytest.raises(
                RuntimeError,
                match=f'mmcv.ops.{name}: it needs '
                'the compiled mmcv ops.*mim install'):
            op(torch.zeros(1), torch.zeros(1))


@lite_only
def test_unknown_names_fail_at_import():
    import mmcv.ops
    with pytest.raises(ImportError, match='NoSuchOp'):
        from mmcv.ops import NoSuchOp  # noqa: F401
    assert not hasattr(mmcv.ops, 'NoSuchOp')
    # a real mmcv op that needs mmcv._ext: the error stock mmcv-lite gives
    with pytest.raises(
            ModuleNotFoundError,
            match='CrissCrossAttention needs the compiled') as e:
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    assert e.value.name == 'mmcv._ext'
    with pytest.raises(ModuleNotFoundError):
        import mmcv.ops.multi_scale_deform_attn  # noqa: F401


@lite_only
def test_mmseg_guards_fire_as_with_stock_mmcv_lite():
    from mmseg.models.decode_heads import CCHead, PSAHead, cc_head, psa_head
    assert cc_head.CrissCrossAttention is None
    assert psa_head.PSAMask is None
    with pytest.raises(
            RuntimeError, match='install mmcv-full for '
            'CrissCrossAttention'):
        CCHead(in_channels=4, channels=4, num_classes=2)
    with pytest.raises(RuntimeError, match='install mmcv-full for PSAMask'):
        PSAHead(in_channels=4, channels=4, num_classes=2, mask_size=(4, 4))


_STOCK_PROBE = """
import json, sys
out = {}
for name in ('CrissCrossAttention', 'NoSuchOp'):
    try:
        exec(f'from mmcv.ops import {name}')
        out[name] = None
    except ImportError as e:
        out[name] = [type(e).__name__, e.name]
print(json.dumps(out))
"""


@lite_only
def test_missing_op_errors_match_stock_mmcv_lite(tmp_path):
    """The exception type (and ``.name``) a guarded import sees is the same
    with and without the stand-in, for a real op; a typo is an ImportError
    in both (stock mmcv-lite fails on mmcv._ext before looking at it)."""
    import json
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS='1')
    stock = json.loads(
        subprocess.run([sys.executable, '-c', _STOCK_PROBE],
                       env=env,
                       cwd=tmp_path,
                       capture_output=True,
                       text=True,
                       check=True).stdout)
    with_plugin = json.loads(
        subprocess.run([
            sys.executable, '-c', 'import geminifusion_mmseg\n' + _STOCK_PROBE
        ],
                       env=env,
                       cwd=tmp_path,
                       capture_output=True,
                       text=True,
                       check=True).stdout.splitlines()[-1])
    assert stock['CrissCrossAttention'] == ['ModuleNotFoundError', 'mmcv._ext']
    assert with_plugin['CrissCrossAttention'] == stock['CrissCrossAttention']
    assert stock['NoSuchOp'] is not None
    assert with_plugin['NoSuchOp'][0] == 'ImportError'


_FULL_MMCV_PROBE = """
import importlib.util, os, sys
import mmcv
# make mmcv._ext findable, as it is with full mmcv (compiled ops)
mmcv.__path__.append(sys.argv[1])
spec = importlib.util.spec_from_file_location('fallback', sys.argv[2])
fallback = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fallback)
assert fallback.has_compiled_mmcv_ops()
assert fallback.install_mmcv_ops_fallback() is False
assert 'mmcv.ops' not in sys.modules and not hasattr(mmcv, 'ops')
print('untouched')
"""


def test_with_compiled_ops_nothing_is_replaced(tmp_path):
    """With ``mmcv._ext`` present (full mmcv), the installer does nothing.
    Run in a fresh process where an ``_ext`` module is made findable."""
    import subprocess
    import sys
    (tmp_path / '_ext.py').write_text('')
    fallback = osp.join(REPO, 'geminifusion_mmseg', 'utils',
                        'mmcv_ops_fallback.py')
    run = subprocess.run(
        [sys.executable, '-c', _FULL_MMCV_PROBE,
         str(tmp_path), fallback],
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == 'untouched'


class _Evil:

    def __reduce__(self):
        return (os.system, ('touch geminifusion_pwned', ))


def test_external_loader_refuses_code_and_runs_nothing(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(
                CheckpointLoadError, match='refused to load .*'
                'evil.pth.*system'):
            load_external_checkpoint(path)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / 'geminifusion_pwned').exists()


def test_external_loader_accepts_numpy_scalars_and_names_missing_file(
        tmp_path):
    path = str(tmp_path / 'released.pth.tar')
    torch.save(
        {
            'segmenter': {
                'module.alpha': torch.ones(2)
            },
            'epoch_start': 3,
            'best_val': np.float64(0.5),
            'hist': np.arange(3),
        }, path)
    ckpt = load_external_checkpoint(path)
    assert ckpt['best_val'] == 0.5 and ckpt['epoch_start'] == 3
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        load_external_checkpoint(str(tmp_path / 'nothere.pth'))
    bad = tmp_path / 'garbage.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointLoadError, match='garbage.pth'):
        load_external_checkpoint(str(bad))


class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        out = self.linear(torch.stack(x))
        return dict(loss=out.square().mean()) if mode == 'loss' else [out]


class _TinyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2, ), float(i)))


def _runner(work_dir, max_iters, hooks, resume=False):
    return Runner(
        model=_TinyModel(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_TinyData(),
            batch_size=2,
            sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type=CheckpointHook, interval=2, by_epoch=False)),
        custom_hooks=hooks,
        resume=resume,
        default_scope='mmseg')


def test_checkpoints_load_with_plain_torch_load_and_resume_exactly(tmp_path):
    hook = [dict(type='WeightsOnlyCheckpointHook')]
    first = _runner(str(tmp_path), 4, hook)
    first.train()
    first.message_hub.update_info('best_score', np.float32(0.25))
    first.save_checkpoint(str(tmp_path), 'iter_4.pth')
    ckpt_path = str(tmp_path / 'iter_4.pth')
    # a process that never imports the plugin (nor mmengine, nor numpy)
    assert load_in_torch_only_process(ckpt_path).split()[0] == '4'
    ckpt = torch.load(ckpt_path, weights_only=True)
    buffered = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffered['log_history'], torch.Tensor)
    assert buffered['log_history'].dtype == torch.float64
    assert ckpt['message_hub']['runtime_info']['best_score'] == 0.25

    saved = {
        k: (v.data, v.max_length)
        for k, v in first.message_hub.log_scalars.items()
    }
    runner = _runner(str(tmp_path), 6, hook, resume=True)
    runner.load_or_resume()  # what train() does first
    for key, ((log, count), max_length) in saved.items():
        buf = runner.message_hub.log_scalars[key]
        assert buf.max_length == max_length, key
        for got, want in zip(buf.data, (log, count)):
            assert got.dtype == want.dtype and np.array_equal(got, want), key
    runner.train()
    history = runner.message_hub.get_scalar('train/loss')
    assert len(history.data[0]) == 6  # 4 resumed + 2 new
    assert runner.iter == 6


def test_old_checkpoints_with_numpy_buffers_still_resume(tmp_path):
    """Files of the earlier hook (numpy arrays in the buffers) resume."""
    from geminifusion_mmseg.engine.hooks import WeightsOnlyCheckpointHook
    log, count = np.array([1.5, 2.5]), np.array([1, 1])
    ckpt = dict(
        message_hub=dict(
            log_scalars={
                'train/loss':
                dict(
                    __history_buffer__=True,
                    log_history=log,
                    count_history=count,
                    max_length=7)
            }))
    WeightsOnlyCheckpointHook().after_load_checkpoint(None, ckpt)
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert buf.max_length == 7
    assert np.array_equal(buf.data[0], log) and buf.data[0].dtype == log.dtype


def test_to_portable_copies_and_converts_every_numpy_value():
    from collections import OrderedDict

    from geminifusion_mmseg.engine.hooks.weights_only_checkpoint_hook import \
        to_portable
    live = [np.uint8(3)]
    obj = OrderedDict(
        a=np.arange(3, dtype=np.int16),
        b=[np.float32(0.5), (np.bool_(True), live)],
        c=torch.ones(1),
        d='text')
    out = to_portable(obj)
    assert type(out) is OrderedDict and out['c'] is obj['c']
    assert out['a'].dtype == torch.int16 and out['a'].tolist() == [0, 1, 2]
    assert out['b'][0] == 0.5 and type(out['b'][0]) is float
    assert out['b'][1][0] is True and out['b'][1][1] == [3]
    assert type(live[0]) is np.uint8  # the input is left as it was


def test_without_the_hook_torch_refuses_mmengine_checkpoints(tmp_path):
    """Documents why the hook exists: stock mmengine checkpoints hold
    HistoryBuffer objects that weights_only loading rejects."""
    _runner(str(tmp_path), 2, []).train()
    with pytest.raises(Exception, match='HistoryBuffer|getattr'):
        torch.load(str(tmp_path / 'iter_2.pth'), weights_only=True)


_IMPORTS_MMSEG_APIS_FIRST = """
import sys
import mmseg.apis  # before anything of the plugin's
from mmseg.apis import init_model  # noqa: F401
print(__name__, sys.argv[1:], sys.path[0])
"""


@lite_only
def test_mmseg_apis_first_needs_the_runner(tmp_path):
    """Under mmcv-lite a script importing mmseg.apis first fails with
    mmcv's error (an installed package appends the fix to it, see
    tests/test_packaging.py; the bare import is not made to work, by
    design: docs/packaging.md); through ``python -m geminifusion_mmseg``
    it runs."""
    import subprocess
    import sys
    script = tmp_path / 'user_script.py'
    script.write_text(_IMPORTS_MMSEG_APIS_FIRST)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    plain = subprocess.run([sys.executable, str(script)],
                           env=env,
                           cwd=tmp_path,
                           capture_output=True,
                           text=True)
    assert plain.returncode != 0
    assert "No module named 'mmcv._ext'" in plain.stderr
    run = subprocess.run(
        [sys.executable, '-m', 'geminifusion_mmseg',
         str(script), 'a', '--b'],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split('\n')[-2] == \
        f"__main__ ['a', '--b'] {tmp_path}"


def test_runner_resolves_package_tools_and_names_what_is_missing():
    from geminifusion_mmseg.__main__ import resolve_script
    path = resolve_script('mmseg::misc/print_config')
    assert path.endswith(osp.join('.mim', 'tools', 'misc', 'print_config.py'))
    assert osp.isfile(path)
    ours = resolve_script('geminifusion_mmseg::test.py')
    assert osp.isfile(ours) and osp.basename(ours) == 'test.py'
    with pytest.raises(SystemExit, match='no such tool .*nope.py'):
        resolve_script('mmseg::nope')
    with pytest.raises(SystemExit, match="'no_such_pkg' is not installed"):
        resolve_script('no_such_pkg::x.py')
    with pytest.raises(SystemExit, match='no such script: missing.py'):
        resolve_script('missing.py')

"""mmcv-lite support and weights-only checkpoint loading."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmcv
from geminifusion_mmseg.utils import (CheckpointLoadError,
                                      has_compiled_mmcv_ops,
                                      load_external_checkpoint)

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
def test_other_ops_fail_clearly_when_used():
    from mmcv.ops import CrissCrossAttention, sigmoid_focal_loss
    with pytest.raises(RuntimeError, match='mmcv.ops.sigmoid_focal_loss: '
                       'it needs the compiled mmcv ops'):
        sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))
    with pytest.raises(RuntimeError, match='CrissCrossAttention'):
        CrissCrossAttention(8)


class _Evil:

    def __reduce__(self):
        return (os.system, ('touch geminifusion_pwned',))


def test_external_loader_refuses_code_and_runs_nothing(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointLoadError, match='refused to load .*'
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


def test_checkpoints_load_with_weights_only_and_resume(tmp_path):
    hook = [dict(type='WeightsOnlyCheckpointHook')]
    _runner(str(tmp_path), 4, hook).train()
    ckpt_path = str(tmp_path / 'iter_4.pth')
    ckpt = torch.load(ckpt_path, weights_only=True)  # no error
    assert ckpt['meta']['iter'] == 4
    buffered = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffered, dict) and len(buffered['log_history']) == 4

    runner = _runner(str(tmp_path), 6, hook, resume=True)
    runner.train()
    history = runner.message_hub.get_scalar('train/loss')
    assert len(history.data[0]) == 6  # 4 resumed + 2 new
    assert runner.iter == 6


def test_without_the_hook_torch_refuses_mmengine_checkpoints(tmp_path):
    """Documents why the hook exists: stock mmengine checkpoints hold
    HistoryBuffer objects that weights_only loading rejects."""
    _runner(str(tmp_path), 2, []).train()
    with pytest.raises(Exception, match='HistoryBuffer|getattr'):
        torch.load(str(tmp_path / 'iter_2.pth'), weights_only=True)

"""AtomicCheckpointHook in-process: pruning, last_checkpoint repair, the
mmengine version guard and the atomic storage backend. (Half-written
checkpoints, latest and best: tests/test_training_tools.py.)"""
import glob
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmseg.registry import DATASETS, MODELS
from torch.utils.data import Dataset

from geminifusion_mmseg.engine.hooks import AtomicCheckpointHook
from geminifusion_mmseg.engine.hooks.atomic_checkpoint_hook import (
    ATOMIC_BACKEND, MMENGINE_VERSIONS, AtomicLocalBackend,
    check_mmengine_version)


@MODELS.register_module(name='AtomicTestModel', force=True)
class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, mode='loss'):
        out = self.linear(torch.stack(x))
        return dict(loss=out.square().mean()) if mode == 'loss' else [out]


@DATASETS.register_module(name='AtomicTestData', force=True)
class _TinyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2, ), float(i)))


def _cfg(work_dir, max_iters, resume=False, **checkpoint):
    return Config(
        dict(
            model=dict(type='AtomicTestModel'),
            work_dir=str(work_dir),
            experiment_name=f'atomic_{osp.basename(work_dir)}_{max_iters}',
            train_dataloader=dict(
                dataset=dict(type='AtomicTestData'),
                batch_size=2,
                sampler=dict(type='DefaultSampler', shuffle=False)),
            optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            default_hooks=dict(
                checkpoint=dict(
                    type='AtomicCheckpointHook',
                    interval=2,
                    by_epoch=False,
                    **checkpoint)),
            custom_hooks=[dict(type='WeightsOnlyCheckpointHook')],
            load_from=None,
            resume=resume,
            default_scope='mmseg'))


def _checkpoints(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))


def test_outdated_checkpoints_are_removed_after_the_new_one(tmp_path):
    Runner.from_cfg(_cfg(tmp_path, 6, max_keep_ckpts=1)).train()
    assert _checkpoints(tmp_path) == ['iter_6.pth']
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read().strip() == str(tmp_path / 'iter_6.pth')
    log = ''.join(
        open(p).read() for p in glob.glob(str(tmp_path / '*' / '*.log')))
    assert f'removed the outdated checkpoint {tmp_path}/iter_4.pth' in log


def test_resume_repairs_an_empty_last_checkpoint(tmp_path):
    Runner.from_cfg(_cfg(tmp_path, 4)).train()
    # what a kill during mmengine's in-place rewrite leaves behind
    (tmp_path / 'last_checkpoint').write_text('')
    runner = Runner.from_cfg(_cfg(tmp_path, 6, resume=True))
    runner.train()
    assert runner.iter == 6
    history = runner.message_hub.get_scalar('train/loss')
    assert len(history.data[0]) == 6  # 4 resumed + 2 new: not from scratch
    log = ''.join(
        open(p).read() for p in glob.glob(str(tmp_path / '*' / '*.log')))
    assert 'last_checkpoint was empty (a save was interrupted)' in log
    assert f'newest complete checkpoint, {tmp_path}/iter_4.pth' in log


def test_resume_repairs_a_last_checkpoint_naming_a_missing_file(tmp_path):
    Runner.from_cfg(_cfg(tmp_path, 4)).train()
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
    runner = Runner.from_cfg(_cfg(tmp_path, 6, resume=True))
    runner.train()
    assert runner.iter == 6
    assert len(runner.message_hub.get_scalar('train/loss').data[0]) == 6
    log = ''.join(
        open(p).read() for p in glob.glob(str(tmp_path / '*' / '*.log')))
    assert f'named the missing file {tmp_path}/iter_6.pth' in log


def test_version_guard_names_the_version_and_what_to_check():
    check_mmengine_version()  # the installed one is supported
    for version in ('0.9.1', MMENGINE_VERSIONS[1], '1.0.0'):
        with pytest.raises(RuntimeError) as e:
            check_mmengine_version(version)
        message = str(e.value)
        assert f'mmengine {version} is installed' in message
        assert 'checkpoint_hook.py' in message
        assert 'backend_args=self.backend_args' in message
        assert "type='CheckpointHook'" in message


def test_hook_refuses_file_client_args_and_keeps_other_storage():
    with pytest.raises(ValueError, match='file_client_args=.*backend_args'):
        AtomicCheckpointHook(file_client_args=dict(backend='local'))
    hook = AtomicCheckpointHook(interval=2)
    assert hook.backend_args == dict(
        backend=ATOMIC_BACKEND, defer_removal=True)
    own = dict(backend='local')
    assert AtomicCheckpointHook(backend_args=own).backend_args == own
    assert AtomicCheckpointHook(out_dir='s3://bucket/x').backend_args is None


def test_atomic_backend_writes_whole_files_only(tmp_path):
    backend = get_file_backend(
        str(tmp_path), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    path = str(tmp_path / 'sub' / 'a.txt')
    backend.put_text('first', path)
    with pytest.raises(TypeError):
        backend.put('not bytes', path)  # fails while writing
    assert backend.get_text(path) == 'first'
    assert os.listdir(tmp_path / 'sub') == ['a.txt']  # no temporary file
    # deferred removal skips a file rewritten after remove()
    deferring = AtomicLocalBackend(defer_removal=True)
    other = str(tmp_path / 'b.txt')
    deferring.put_text('b', other)
    deferring.remove(path)
    deferring.remove(other)
    assert osp.isfile(path) and osp.isfile(other)
    deferring.put_text('b again', other)
    assert deferring.flush_removals() == [path]
    assert not osp.exists(path) and osp.isfile(other)

"""configs/custom/*: own data, and fine-tuning with a replaced classifier.

What mmengine 0.10.7 does with ``load_from`` (checked here, see
docs/custom_dataset.md): the checkpoint is loaded non-strictly; a
``decode_head.conv_seg`` of another shape (another class count) is skipped
and reported with ``print`` (stdout, not the log file) as "size mismatch
for decode_head.conv_seg.weight ..."; one of the same shape is loaded
silently. :class:`ReinitClassifierHook` re-initialises it in both cases.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmseg.registry import DATASETS, MODELS
from torch.utils.data import Dataset

from geminifusion_mmseg.datasets.list_maker import make_lists
from tests.helpers.custom_rgbd import make_captures
from tests.helpers.tiny_configs import REPO, save_checkpoint, write_tiny_config

CUSTOM = 'configs/custom/geminifusion_mit-b3_1xb2-300e_custom-480x640.py'
FINETUNE = ('configs/custom/'
            'geminifusion_mit-b3_1xb2-300e_custom-480x640_ft-nyudv2.py')
CLASSES_40 = tuple(f'c{i}' for i in range(40))
# one epoch of one iteration (2 train samples, batch 2) on 48x64 crops
SMALL_TRAINING = """
train_pipeline = [
    dict(type='LoadRGBDImageFromFile'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader['dataset']['pipeline'] = train_pipeline
train_cfg = dict(max_epochs=1)
default_hooks = dict(checkpoint=dict(save_last=False, save_best=None))
"""


def _forty_classes():
    return (f'\nmetainfo = dict(_delete_=True, classes={CLASSES_40!r})\n'
            "train_dataloader['dataset']['metainfo'] = metainfo\n"
            "val_dataloader['dataset']['metainfo'] = metainfo\n"
            "model['decode_head']['num_classes'] = 40\n")


@pytest.fixture(scope='module')
def own_data(tmp_path_factory):
    root = make_captures(
        tmp_path_factory.mktemp('own') / 'my_rgbd', ['a0', 'a1', 'a2'],
        size=(48, 64),
        num_classes=6)
    result = make_lists(root, val_ratio=0.34, seed=0)
    assert (len(result['train']), len(result['val'])) == (2, 1)
    return root


@pytest.fixture(scope='module')
def nyu_checkpoint(tmp_path_factory, own_data):
    """A 'released NYUDv2' stand-in: the tiny model with 40 classes."""
    tmp = tmp_path_factory.mktemp('ckpt')
    cfg = Config.fromfile(
        write_tiny_config(
            str(tmp / 'nyu_tiny.py'), 'configs/geminifusion/'
            'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py', own_data))
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        model.decode_head.conv_seg.bias.fill_(0.5)  # recognisable
    return save_checkpoint(model, tmp / 'nyu_tiny.pth'), model.state_dict()


def _train(tmp_path, base, data_root, extra, name):
    cfg = Config.fromfile(
        write_tiny_config(
            str(tmp_path / f'{name}.py'),
            base,
            data_root,
            extra=SMALL_TRAINING + extra))
    cfg.work_dir = str(tmp_path / name)
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = ''.join(
        open(p).read()
        for p in glob.glob(osp.join(cfg.work_dir, '*', '*.log')))
    return runner.model.state_dict(), log


def _same(a, b, atol=1e-6):
    return a.shape == b.shape and torch.allclose(a, b, atol=atol)


@pytest.mark.parametrize('forty', [False, True], ids=['6cls', '40cls'])
def test_finetune_config_replaces_the_classifier(tmp_path, own_data,
                                                 nyu_checkpoint, capfd, forty):
    ckpt, source = nyu_checkpoint
    extra = f'load_from = {ckpt!r}\n' + (_forty_classes() if forty else '')
    state, log = _train(tmp_path, FINETUNE, own_data, extra, 'ft')
    printed = capfd.readouterr().out
    # one training step at the warm-up lr (6e-11) hardly moves anything
    fuse = 'decode_head.linear_fuse.conv.weight'
    emb = 'backbone.layers.0.patch_embed.proj.weight'
    assert _same(state[fuse], source[fuse]) and _same(state[emb], source[emb])
    weight = state['decode_head.conv_seg.weight']
    assert weight.shape[0] == (40 if forty else 6)
    assert state['decode_head.conv_seg.bias'].abs().max() < 1e-6  # not 0.5
    assert 0.005 < weight.std() < 0.02  # normal, std 0.01
    mismatch = 'size mismatch for decode_head.conv_seg.weight'
    assert (mismatch in printed) is not forty
    assert 'ReinitClassifierHook: decode_head.conv_seg' in log


def test_without_the_hook_equal_class_count_keeps_the_old_classifier(
        tmp_path, own_data, nyu_checkpoint, capfd):
    """Why the hook exists: 40 -> 40 classes loads the old classifier."""
    ckpt, source = nyu_checkpoint
    extra = f'load_from = {ckpt!r}\n' + _forty_classes()
    state, log = _train(tmp_path, CUSTOM, own_data, extra, 'plain')
    assert 'size mismatch' not in capfd.readouterr().out
    assert _same(state['decode_head.conv_seg.bias'],
                 source['decode_head.conv_seg.bias'])
    assert 'ReinitClassifierHook' not in log


@MODELS.register_module(name='ReinitTestSegmentor', force=True)
class _TinySegmentor(BaseModel):
    """Just a ``decode_head.conv_seg``; its loss trains nothing (lr 0)."""

    def __init__(self):
        super().__init__()
        self.decode_head = torch.nn.Module()
        self.decode_head.conv_seg = torch.nn.Conv2d(4, 3, 1)
        torch.nn.init.constant_(self.decode_head.conv_seg.weight, 1.)

    def forward(self, x, mode='loss'):
        out = self.decode_head.conv_seg(torch.stack(x))
        return dict(loss=out.mean()) if mode == 'loss' else [out]


@DATASETS.register_module(name='ReinitTestData', force=True)
class _TinyData(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(x=torch.ones(4, 2, 2))


def _runner_cfg(work_dir, max_iters, load_from=None, resume=False, hooks=()):
    return Config(
        dict(
            model=dict(type='ReinitTestSegmentor'),
            work_dir=str(work_dir),
            experiment_name=f'reinit_{osp.basename(work_dir)}',
            train_dataloader=dict(
                dataset=dict(type='ReinitTestData'),
                batch_size=2,
                sampler=dict(type='DefaultSampler', shuffle=False)),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.)),
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            default_hooks=dict(
                checkpoint=dict(
                    type='CheckpointHook', interval=2, by_epoch=False)),
            custom_hooks=[dict(type='WeightsOnlyCheckpointHook'), *hooks],
            load_from=load_from,
            resume=resume,
            default_scope='mmseg'))


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    """iter_2.pth of a 2-iteration run: conv_seg weight all ones."""
    work_dir = tmp_path_factory.mktemp('tiny_ckpt')
    Runner.from_cfg(_runner_cfg(work_dir, 2)).train()
    return str(work_dir / 'iter_2.pth')


@pytest.mark.parametrize(
    'start,resume,acts', [('load_from', False, True), (None, False, False),
                          ('load_from', True, False)],
    ids=['load_from', 'scratch', 'resume'])
def test_hook_acts_only_on_a_fresh_load_from(tmp_path, tiny_checkpoint, start,
                                             resume, acts):
    load_from = tiny_checkpoint if start else None
    runner = Runner.from_cfg(
        _runner_cfg(
            tmp_path,
            4,
            load_from,
            resume,
            hooks=[dict(type='ReinitClassifierHook')]))
    runner.train()
    assert runner.iter == 4
    weight = runner.model.decode_head.conv_seg.weight  # lr 0: as loaded
    assert bool(weight.abs().max() < 0.2) is acts
    log = ''.join(
        open(p).read() for p in glob.glob(osp.join(tmp_path, '*', '*.log')))
    assert ('ReinitClassifierHook: decode_head.conv_seg' in log) is acts
    if acts:
        assert f'after loading {tiny_checkpoint}' in log


def test_hook_names_a_missing_module(tmp_path, tiny_checkpoint):
    runner = Runner.from_cfg(
        _runner_cfg(
            tmp_path,
            4,
            tiny_checkpoint,
            hooks=[
                dict(type='ReinitClassifierHook', modules='decode_head.cls')
            ]))
    with pytest.raises(ValueError, match="no module 'decode_head.cls'"):
        runner.train()


def test_custom_configs_build(own_data):
    """The shipped configs parse and their datasets read the lists."""
    for rel in (CUSTOM, FINETUNE):
        cfg = Config.fromfile(osp.join(REPO, rel))
        assert cfg.train_dataloader.dataset.type == 'RGBDDataset'
        classes = cfg.train_dataloader.dataset.metainfo['classes']
        assert cfg.model.decode_head.num_classes == len(classes)
        assert cfg.model.backbone.arch == 'b3'
    assert cfg.load_from.endswith('geminifusion_mit-b3_nyudv2.pth')
    assert dict(type='ReinitClassifierHook') in cfg.custom_hooks
    assert dict(type='StageOptimizerResetHook') in cfg.custom_hooks
    for split in ('train_dataloader', 'val_dataloader'):
        dataset = dict(cfg[split].dataset, data_root=own_data)
        ds = DATASETS.build(dataset)
        sample = ds[0]
        assert sample['inputs'].shape[0] == 6

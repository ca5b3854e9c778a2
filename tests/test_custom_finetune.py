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
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from geminifusion_mmseg.datasets.list_maker import make_lists
from geminifusion_mmseg.engine.hooks import ReinitClassifierHook
from mmseg.registry import MODELS
from tests.helpers.custom_rgbd import make_captures
from tests.helpers.tiny_configs import REPO, save_checkpoint, \
    write_tiny_config

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
            str(tmp / 'nyu_tiny.py'),
            'configs/geminifusion/'
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
                                                 nyu_checkpoint, capfd,
                                                 forty):
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


def _fake_runner(load_from, resume=False, iteration=0):
    model = torch.nn.Module()
    model.decode_head = torch.nn.Module()
    model.decode_head.conv_seg = torch.nn.Conv2d(4, 3, 1)
    torch.nn.init.constant_(model.decode_head.conv_seg.weight, 1.)
    messages = []
    return SimpleNamespace(
        model=model,
        cfg=Config(dict(load_from=load_from, resume=resume)),
        _load_from=load_from,
        _resume=resume,
        iter=iteration,
        logger=SimpleNamespace(info=messages.append),
        messages=messages)


@pytest.mark.parametrize(
    'load_from,resume,iteration,acts',
    [('w.pth', False, 0, True), (None, False, 0, False),
     ('w.pth', True, 0, False), ('w.pth', False, 10, False)],
    ids=['load_from', 'scratch', 'resume', 'later'])
def test_hook_acts_only_on_a_fresh_load_from(load_from, resume, iteration,
                                             acts):
    runner = _fake_runner(load_from, resume, iteration)
    ReinitClassifierHook().before_train(runner)
    weight = runner.model.decode_head.conv_seg.weight
    assert bool(weight.abs().max() < 0.2) is acts
    assert bool(runner.messages) is acts


def test_hook_names_a_missing_module():
    runner = _fake_runner('w.pth')
    with pytest.raises(ValueError, match="no module 'decode_head.cls'"):
        ReinitClassifierHook(modules='decode_head.cls').before_train(runner)


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
    from mmseg.registry import DATASETS
    for split in ('train_dataloader', 'val_dataloader'):
        dataset = dict(cfg[split].dataset, data_root=own_data)
        ds = DATASETS.build(dataset)
        sample = ds[0]
        assert sample['inputs'].shape[0] == 6

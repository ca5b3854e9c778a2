"""Bad input gets a message naming the file, key or value and what to do:
empty and non-image files, NaN/inf depth, list files with a byte-order mark
or swapped columns, text and empty checkpoints, images too small for the
backbone, labels beyond the head's classes, mean/std of the wrong length,
a quickstart data_root holding other files."""
import logging
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.structures import PixelData
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from torch.utils._python_dispatch import TorchDispatchMode

from geminifusion_mmseg.apis import inference_model, init_model
from geminifusion_mmseg.datasets import (MultiModalFolderDataset,
                                         NYUDv2Dataset,
                                         generate_quickstart_dataset)
from geminifusion_mmseg.datasets.list_file import ListFileError
from geminifusion_mmseg.utils.checkpoint import (CheckpointLoadError,
                                                 load_external_checkpoint)
from tests.helpers.synthetic_rgbd import make_nyudv2_tokenfusion, write_list
from tests.helpers.tiny_configs import REPO, write_tiny_config

QUICKSTART = osp.join(
    REPO,
    'configs/quickstart/geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py')

pytestmark = pytest.mark.usefixtures('one_thread')


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_logged():
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


@pytest.fixture
def nyu(tmp_path):
    return make_nyudv2_tokenfusion(
        tmp_path / 'nyu', num_train=2, num_test=1, border_crop=False)


# ------------------------------------------------------------ image files
@pytest.mark.parametrize('folder', ['rgb', 'depth', 'masks'])
def test_zero_byte_image_is_named(nyu, folder):
    path = osp.join(nyu, folder, '000001.png')  # not the checked first one
    open(path, 'wb').close()
    ds = NYUDv2Dataset(
        data_root=nyu,
        ann_file='train.txt',
        pipeline=[
            dict(type='LoadRGBDImageFromFile'),
            dict(type='LoadRGBDAnnotations')
        ])
    with pytest.raises(OSError, match='is empty \\(0 bytes\\)') as e:
        ds[1]
    assert path in str(e.value)


def test_nan_and_inf_depth_read_as_missing_once_per_file(
        tmp_path, warnings_logged):
    depth = np.full((40, 48), 1500.0, np.float32)
    depth[:4] = np.nan
    depth[4:6, :5] = np.inf
    path = str(tmp_path / 'depth.tiff')
    assert cv2.imwrite(path, depth)
    rgb = str(tmp_path / 'rgb.png')
    cv2.imwrite(rgb, np.full((40, 48, 3), 100, np.uint8))
    load = TRANSFORMS.build(dict(type='LoadRGBDImageFromFile'))
    for _ in range(3):  # every epoch reads the file again
        img = load(dict(img_path=rgb, depth_path=path))['img']
    assert np.isfinite(img).all()
    assert (img[:4, :, 3:] == 0).all() and (img[4:6, :5, 3:] == 0).all()
    assert (img[6:, :, 3:] == 1500).all()
    about = [m for m in warnings_logged if path in m]
    assert len(about) == 1 and '202 NaN/inf value(s)' in about[0]
    # the K-modality loader reads it the same way
    mm = TRANSFORMS.build(
        dict(type='LoadMultiModalImageFromFile', encodings=dict(depth='raw')))
    out = mm(dict(modality_paths=dict(rgb=rgb, depth=path)))['img']
    np.testing.assert_array_equal(out, img)
    # and so does the inference API (same function, per call)
    cfg = Config.fromfile(QUICKSTART)
    model = init_model(cfg)
    inference_model(model, rgb, depth)
    assert any('inference_model: depth' in m and 'NaN/inf' in m
               for m in warnings_logged)


# ------------------------------------------------------------ list files
def test_list_file_with_a_byte_order_mark(nyu, tmp_path):
    lines = open(osp.join(nyu, 'train.txt')).read().splitlines()
    bom = str(tmp_path / 'bom.txt')
    with open(bom, 'w', encoding='utf-8-sig') as f:  # what Notepad writes
        f.write('\n'.join(lines) + '\n')
    ds = NYUDv2Dataset(data_root=nyu, ann_file=bom)
    assert ds.get_data_info(0)['img_path'] == osp.join(nyu, 'rgb',
                                                       '000000.png')
    # one-column lists too (a folder-per-modality dataset)
    names = str(tmp_path / 'names.txt')
    with open(names, 'w', encoding='utf-8-sig') as f:
        f.write('000000\n000001\n')
    ds = MultiModalFolderDataset(
        data_root=nyu,
        ann_file=names,
        modalities=['rgb', 'depth'],
        img_suffix='.png',
        data_prefix=dict(seg_map_path='masks'))
    assert ds.get_data_info(0)['modality_paths']['rgb'].endswith(
        'rgb/000000.png')
    # a list file that is not text
    bad = tmp_path / 'latin1.txt'
    bad.write_bytes(
        'rgb/caf\xe9.png masks/a.png depth/a.png\n'.encode('latin-1'))
    with pytest.raises(ListFileError, match=f'list file {bad} is not UTF-8'):
        NYUDv2Dataset(data_root=nyu, ann_file=str(bad))


@pytest.mark.parametrize(
    'order,what',
    [(('depth', 'masks', 'rgb'), 'the RGB file .*depth/000000.png is a '
      '1-channel uint16 image'),
     (('masks', 'rgb', 'depth'), 'the label file .*rgb/000000.png is a '
      '3-channel uint8 image'),
     (('rgb', 'depth', 'masks'), 'of the label file .*depth/000000.png '
      '.* are class ids 0..39 or 255'),
     (('depth8', 'masks', 'rgb'), 'the RGB file .*depth8/000000.png is a '
      '1-channel uint8 image .* the depth file .*rgb/000000.png is a colour '
      'image')])
def test_swapped_list_columns_fail_on_the_first_sample(nyu, tmp_path, order,
                                                       what):
    os.makedirs(osp.join(nyu, 'depth8'))
    for i in range(2):  # 8-bit depth maps (as some sensors store them)
        depth = cv2.imread(
            osp.join(nyu, 'depth', f'{i:06d}.png'), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(
            osp.join(nyu, 'depth8', f'{i:06d}.png'),
            (depth // 256).astype(np.uint8))
    lines = [
        '\t'.join(f'{col}/{i:06d}.png' for col in order) for i in range(2)
    ]
    lst = write_list(tmp_path / 'swapped.txt', ['', *lines])
    with pytest.raises(ListFileError, match=what) as e:
        NYUDv2Dataset(data_root=nyu, ann_file=lst)
    assert f'line 2 of {lst}' in str(e.value)
    assert "'rgb label depth'" in str(e.value)
    # the right order passes, 8-bit depth included
    right = write_list(tmp_path / 'right.txt', [
        f'rgb/{i:06d}.png\tmasks/{i:06d}.png\tdepth8/{i:06d}.png'
        for i in range(2)
    ])
    assert len(NYUDv2Dataset(data_root=nyu, ann_file=right)) == 2


# ------------------------------------------------------------ checkpoints
@pytest.mark.parametrize('content,what', [
    (b'', 'is empty \\(0 bytes\\)'),
    (b'just some notes\n', "holds text \\('just some notes"),
    (b'version https://git-lfs.github.com/spec/v1\noid sha256:ab\n',
     'Git LFS pointer'),
    (b'PK\x03\x04 damaged', 'damaged or not a PyTorch checkpoint'),
])
def test_checkpoint_that_is_not_one_is_named(tmp_path, content, what):
    path = str(tmp_path / 'model.pth')
    open(path, 'wb').write(content)
    with pytest.raises(CheckpointLoadError, match=what) as e:
        load_external_checkpoint(path)
    assert path in str(e.value)
    with pytest.raises(CheckpointLoadError, match=what):
        init_model(QUICKSTART, path)


# ------------------------------------------------------------ the model
@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    cfg = write_tiny_config(
        str(tmp_path_factory.mktemp('cfg') / 'tiny.py'), QUICKSTART, 'data')
    cfg = Config.fromfile(cfg)
    return MODELS.build(cfg.model), cfg


def test_images_smaller_than_the_backbone_accepts(tiny_model):
    model, cfg = tiny_model
    model.eval()
    assert model.backbone.min_input_size == 13  # sr_ratios (4, 2, 1, 1)
    with torch.no_grad():
        model._forward(torch.zeros(1, 6, 13, 40))
        with pytest.raises(ValueError) as e:
            model._forward(torch.zeros(1, 6, 12, 40))
    assert 'input is 12x40 (HxW)' in str(e.value)
    assert 'the 13 px per side' in str(e.value)
    assert 'sr_ratios=(4, 2, 1, 1)' in str(e.value)
    cfg = Config.fromfile(QUICKSTART)  # the published (8, 4, 2, 1)
    assert MODELS.build(cfg.model).backbone.min_input_size == 29


def test_label_beyond_the_head_classes_is_named(tiny_model):
    model, _ = tiny_model
    model.train()
    label = torch.zeros(1, 32, 32, dtype=torch.long)
    label[0, :4] = 6  # the head has 6 classes: 0..5
    label[0, 4:8] = 255  # ignore is fine
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=label),
        metainfo=dict(
            seg_map_path='masks/000007.png',
            img_shape=(32, 32),
            pad_shape=(32, 32)))
    with pytest.raises(ValueError) as e:
        model.loss(torch.zeros(1, 6, 32, 32), [sample])
    msg = str(e.value)
    assert 'masks/000007.png holds the value 6' in msg
    assert 'num_classes=6' in msg and 'valid labels 0..5' in msg


class _HostReads(TorchDispatchMode):
    """Counts the ops that read a tensor's value back to the host
    (``.item()``, ``bool()``, ``int()``: ``aten._local_scalar_dense``)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _labelled(values, path):
    label = torch.zeros(1, 32, 32, dtype=torch.long)
    label[0, :2] = 255
    for i, v in enumerate(values):
        label[0, 2 + i] = v
    return SegDataSample(
        gt_sem_seg=PixelData(data=label),
        metainfo=dict(
            seg_map_path=path, img_shape=(32, 32), pad_shape=(32, 32)))


def test_label_check_reads_the_batch_back_once(tiny_model):
    """One host-device sync per batch (one combined reduction), not one
    per sample; the first bad sample and its largest bad value named."""
    model, _ = tiny_model
    good = [_labelled([1, 5], f'masks/{i}.png') for i in range(4)]
    with _HostReads() as reads:
        model._check_labels(good)
    assert reads.count <= 1
    batch = good[:2] + [
        _labelled([3, 7, 9], 'masks/bad.png'),
        _labelled([8], 'masks/later.png')
    ]
    with _HostReads() as reads, pytest.raises(ValueError) as e:
        model._check_labels(batch)
    assert reads.count <= 1
    assert 'masks/bad.png holds the value 9' in str(e.value)


def test_mean_std_of_the_wrong_length(tiny_model):
    _, cfg = tiny_model
    cfg = cfg.copy()
    cfg.model.data_preprocessor.mean = [123.675, 116.28, 103.53]
    with pytest.raises(ValueError) as e:
        MODELS.build(cfg.model)
    assert 'data_preprocessor.mean has 3 values' in str(e.value)
    assert 'takes 6 input channels' in str(e.value)


# ------------------------------------------------------------ quickstart
def test_quickstart_never_replaces_what_it_did_not_write(
        tmp_path, monkeypatch):
    gen = dict(num_train=2, num_val=1, size=(32, 40))
    mine = tmp_path / 'my_data'
    mine.mkdir()
    (mine / 'thesis.tex').write_text('years of work')
    with pytest.raises(FileExistsError) as e:
        generate_quickstart_dataset(str(mine), **gen)
    assert f'data_root {mine} holds files' in str(e.value)
    assert 'thesis.tex' in str(e.value)
    assert os.listdir(mine) == ['thesis.tex']
    monkeypatch.chdir(mine)
    for root in ('.', '..', str(tmp_path)):
        with pytest.raises(ValueError, match='the current folder'):
            generate_quickstart_dataset(root, **gen)
    (tmp_path / 'a_file').write_text('x')
    with pytest.raises(FileExistsError, match='is a file'):
        generate_quickstart_dataset(str(tmp_path / 'a_file'), **gen)
    assert os.listdir(mine) == ['thesis.tex']
    assert sorted(os.listdir(tmp_path)) == ['a_file', 'my_data']

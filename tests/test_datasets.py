"""RGB-D datasets, loading transforms, their error messages, browse tool."""
import logging
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmseg.registry import DATASETS, TRANSFORMS

from geminifusion_mmseg.datasets import (NYUDV2_CLASSES, NYUDv2Dataset,
                                         RGBDDataset, SUNRGBDDataset)
from geminifusion_mmseg.datasets.transforms.size_mismatch import centre_crop
from geminifusion_mmseg.visualization.rgbd_panel import TITLE_HEIGHT
from tests.helpers import (IGNORE, class_color, label_to_depth,
                           make_nyudv2_dformer, make_nyudv2_tokenfusion,
                           make_sunrgbd_dformer, write_list)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
LOAD = [dict(type='LoadRGBDImageFromFile'), dict(type='LoadRGBDAnnotations')]


@pytest.fixture(scope='module')
def nyu_root(tmp_path_factory):
    return make_nyudv2_tokenfusion(tmp_path_factory.mktemp('nyu'))


@pytest.fixture
def nyu_copy(tmp_path):
    """A private NYUDv2 copy that a test may break."""
    return make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=3, num_test=1)


def _check_sample(results, bits, reduce_zero_label):
    """An aligned sample (depth of the RGB size, or centre-cropped to it)
    with the synthetic data's ties between RGB, depth and label."""
    img, seg = results['img'], results['gt_seg_map']
    size = cv2.imread(results['img_path']).shape[:2]
    assert img.dtype == np.float32 and img.shape == size + (6, )
    assert results['img_shape'] == results['ori_shape'] == size
    # depth channels: the raw stored value, repeated
    raw = cv2.imread(results['depth_path'], cv2.IMREAD_UNCHANGED)
    assert raw.dtype == (np.uint16 if bits == 16 else np.uint8)
    raw = centre_crop(raw, size)
    for c in range(3, 6):
        np.testing.assert_array_equal(img[..., c], raw.astype(np.float32))
    # label: depth is tied to the (0-based) class
    np.testing.assert_array_equal(label_to_depth(seg, bits), raw)
    stored = cv2.imread(results['seg_map_path'], cv2.IMREAD_UNCHANGED)
    if reduce_zero_label:
        expected = np.where(stored == 0, IGNORE, stored.astype(int) - 1)
    else:
        expected = stored
    np.testing.assert_array_equal(seg, expected)
    # RGB order: colour of the class (+-8 noise, JPEG a bit more)
    known = seg != IGNORE
    diff = np.abs(img[..., :3] - class_color(seg).astype(np.float32))
    assert np.median(diff[known]) <= 8


def test_nyudv2_tokenfusion_layout(nyu_root):
    """The released layout: RGB and masks border-cropped (a size per
    image), depth the full frame; 'crop' aligns it, 'error' refuses it."""
    ds = NYUDv2Dataset(
        data_root=nyu_root,
        ann_file='train.txt',
        size_mismatch='crop',
        pipeline=LOAD)
    assert len(ds) == 4 and len(ds.metainfo['classes']) == 40
    assert len(ds.metainfo['palette']) == 40
    assert ds.metainfo['classes'][-1] == 'otherprop'
    info = ds.get_data_info(1)
    assert info['img_path'] == osp.join(nyu_root, 'rgb', '000001.png')
    assert info['depth_path'] == osp.join(nyu_root, 'depth', '000001.png')
    assert info['seg_map_path'] == osp.join(nyu_root, 'masks', '000001.png')
    assert info['num_classes'] == 40 and info['reduce_zero_label'] is False
    assert info['seg_fields'] == [] and info['label_map'] is None
    assert info['size_mismatch'] == 'crop'
    sizes = set()
    for i in range(len(ds)):
        results = ds[i]
        _check_sample(results, bits=16, reduce_zero_label=False)
        assert 'unaligned_modalities' not in results
        sizes.add(results['img'].shape[:2])
        depth_size = cv2.imread(results['depth_path'], -1).shape
        assert depth_size == (48, 64)
    assert (48, 64) in sizes and len(sizes) == 4  # one full frame
    assert ds[0]['img'][..., 3:].max() > 255  # 16-bit millimetres, raw

    # the default refuses it, naming the files, both sizes and the option
    refusing = NYUDv2Dataset(
        data_root=nyu_root, ann_file='train.txt', pipeline=LOAD)
    assert refusing.get_data_info(1)['size_mismatch'] == 'error'
    refusing[0]  # the full-frame sample is aligned
    with pytest.raises(ValueError) as e:
        refusing[1]
    msg = str(e.value)
    rgb_size = cv2.imread(info['img_path']).shape[:2]
    assert info['depth_path'] in msg and info['img_path'] in msg
    assert '(48, 64)' in msg and str(rgb_size) in msg
    assert 'size_mismatch' in msg and "'stretch'" in msg and "'crop'" in msg
    test = DATASETS.build(
        dict(type='NYUDv2Dataset', data_root=nyu_root, ann_file='test.txt'))
    assert len(test) == 2
    with pytest.raises(ValueError, match="size_mismatch must be one of"):
        NYUDv2Dataset(
            data_root=nyu_root, ann_file='train.txt', size_mismatch='pad')


def test_stretched_depth_in_the_released_layout(nyu_root):
    """'stretch': the image at the RGB size with depth already stretched
    (torch bilinear), the depth kept at its own size for the resize."""
    ds = NYUDv2Dataset(
        data_root=nyu_root,
        ann_file='train.txt',
        size_mismatch='stretch',
        pipeline=LOAD)
    results = ds[1]
    raw = cv2.imread(results['depth_path'], -1).astype(np.float32)
    size = results['gt_seg_map'].shape
    assert results['img'].shape == size + (6, ) and size != raw.shape
    expected = F.interpolate(
        torch.from_numpy(raw)[None, None],
        size=size,
        mode='bilinear',
        align_corners=False)[0, 0].numpy()
    for c in range(3, 6):
        np.testing.assert_allclose(
            results['img'][..., c], expected, rtol=1e-6, atol=1e-3)
    kept = results['unaligned_modalities']['depth']
    assert kept.channels == (3, 6) and kept.shape == size
    np.testing.assert_array_equal(kept.data[..., 0], raw)
    # an explicit loader setting overrides the dataset's
    crop = TRANSFORMS.build(
        dict(type='LoadRGBDImageFromFile', size_mismatch='crop'))(
            ds.get_data_info(1))
    assert 'unaligned_modalities' not in crop
    np.testing.assert_array_equal(crop['img'][..., 3], centre_crop(raw, size))
    with pytest.raises(ValueError, match="size_mismatch must be one of"):
        TRANSFORMS.build(
            dict(type='LoadRGBDImageFromFile', size_mismatch='resize'))


def test_sunrgbd_dformer_layout(tmp_path):
    root = make_sunrgbd_dformer(tmp_path / 'sun', num_train=2, num_test=2)
    ds = SUNRGBDDataset(data_root=root, ann_file='test.txt', pipeline=LOAD)
    assert len(ds) == 2 and len(ds.metainfo['classes']) == 37
    assert tuple(ds.metainfo['classes']) == NYUDV2_CLASSES[:37]
    assert ds.get_data_info(0)['seg_map_path'].endswith('labels/test_0.png')
    results = ds[0]
    _check_sample(results, bits=8, reduce_zero_label=True)
    assert results['gt_seg_map'].max() == IGNORE  # 0 = unlabelled -> 255


@pytest.mark.parametrize('list_columns', [1, 3, None])
def test_nyudv2_dformer_layout_by_config(tmp_path, list_columns):
    root = make_nyudv2_dformer(
        tmp_path / 'nyu', num_train=3, num_test=1, list_columns=list_columns)
    cfg = dict(
        type='NYUDv2Dataset',
        data_root=root,
        ann_file='' if list_columns is None else 'train.txt',
        data_prefix=dict(
            img_path='RGB', depth_path='Depth', seg_map_path='Label'),
        img_suffix='.jpg',
        depth_suffix='.png',
        reduce_zero_label=True,
        pipeline=LOAD)
    ds = DATASETS.build(cfg)
    assert len(ds) == (4 if list_columns is None else 3)
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(root, 'RGB', '0.jpg')
    assert info['depth_path'] == osp.join(root, 'Depth', '0.png')
    assert info['seg_map_path'] == osp.join(root, 'Label', '0.png')
    _check_sample(ds[0], bits=8, reduce_zero_label=True)


@pytest.mark.parametrize('list_columns', [1, 3, None])
def test_generic_rgbd_dataset_from_config(tmp_path, list_columns):
    """RGBDDataset configured entirely from the config: own classes and
    palette, folders, suffixes, a list file (either layout) or stem pairing,
    reduce_zero_label and a depth encoding."""
    root = make_nyudv2_dformer(
        tmp_path / 'own', num_train=3, num_test=1, list_columns=list_columns)
    classes = tuple(f'class{i}' for i in range(40))
    palette = [[i, 2 * i, 3 * i] for i in range(40)]
    ds = DATASETS.build(
        dict(
            type='RGBDDataset',
            data_root=root,
            ann_file='' if list_columns is None else 'train.txt',
            data_prefix=dict(
                img_path='RGB', depth_path='Depth', seg_map_path='Label'),
            img_suffix='.jpg',
            depth_suffix='.png',
            seg_map_suffix='.png',
            metainfo=dict(classes=classes, palette=palette),
            reduce_zero_label=True,
            pipeline=[
                dict(
                    type='LoadRGBDImageFromFile',
                    depth_encoding='scale',
                    depth_scale=2.0),
                dict(type='LoadRGBDAnnotations')
            ]))
    assert len(ds) == (4 if list_columns is None else 3)
    assert tuple(ds.metainfo['classes']) == classes
    assert [list(c) for c in ds.metainfo['palette']] == palette
    info = ds.get_data_info(2)
    assert info['img_path'] == osp.join(root, 'RGB', '2.jpg')
    assert info['depth_path'] == osp.join(root, 'Depth', '2.png')
    assert info['seg_map_path'] == osp.join(root, 'Label', '2.png')
    assert info['num_classes'] == 40 and info['label_map'] is None
    results = ds[2]
    raw = cv2.imread(info['depth_path'], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(results['img'][..., 3], raw * 2.0)
    stored = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(
        results['gt_seg_map'],
        np.where(stored == 0, IGNORE,
                 stored.astype(int) - 1))
    # without a palette mmseg makes one up, one colour per class (the
    # labels hold 40 classes: the first-sample check would refuse 3)
    ds = RGBDDataset(
        data_root=root,
        ann_file='' if list_columns is None else 'train.txt',
        data_prefix=dict(
            img_path='RGB', depth_path='Depth', seg_map_path='Label'),
        metainfo=dict(classes=classes[:3]),
        check_files=False)
    assert len(ds.metainfo['palette']) == 3


def test_nyudv2_dformer_hha(tmp_path):
    root = make_nyudv2_dformer(
        tmp_path / 'nyu', num_train=2, num_test=0, depth='hha')
    ds = NYUDv2Dataset(
        data_root=root,
        ann_file='train.txt',
        data_prefix=dict(
            img_path='RGB', depth_path='HHA', seg_map_path='Label'),
        img_suffix='.jpg',
        depth_suffix='.jpg',
        reduce_zero_label=True,
        pipeline=[
            dict(type='LoadRGBDImageFromFile', depth_encoding='hha'),
            dict(type='LoadRGBDAnnotations')
        ])
    results = ds[0]
    hha = cv2.cvtColor(
        cv2.imread(results['depth_path'], cv2.IMREAD_UNCHANGED),
        cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(results['img'][..., 3:], hha)
    # HHA with the raw encoding: 3 different channels -> clear error
    raw = TRANSFORMS.build(dict(type='LoadRGBDImageFromFile'))
    with pytest.raises(ValueError, match='3 different channels.*hha'):
        raw(
            dict(
                img_path=results['img_path'],
                depth_path=results['depth_path']))


def test_list_file_whitespace_and_blank_lines(nyu_root, tmp_path):
    lst = write_list(tmp_path / 'list.txt', [
        '', 'rgb/000000.png masks/000000.png   depth/000000.png', '   ',
        '\trgb/000001.png\t\tmasks/000001.png depth/000001.png  ', ''
    ])
    ds = NYUDv2Dataset(data_root=nyu_root, ann_file=lst)
    assert len(ds) == 2
    assert ds.get_data_info(1)['depth_path'].endswith('depth/000001.png')


def test_custom_class_subset_label_map(nyu_root):
    ds = NYUDv2Dataset(
        data_root=nyu_root,
        ann_file='train.txt',
        metainfo=dict(classes=('floor', 'wall')),
        pipeline=LOAD)
    seg = ds[0]['gt_seg_map']
    stored = cv2.imread(ds.get_data_info(0)['seg_map_path'], 0)
    np.testing.assert_array_equal(
        seg, np.select([stored == 0, stored == 1], [1, 0], IGNORE))


# ----------------------------------------------------------------------
# dataset construction errors (the same named errors for NYUDv2Dataset and
# the generic RGBDDataset configured for the same folders)
# ----------------------------------------------------------------------
NYU_AS_GENERIC = dict(
    data_prefix=dict(img_path='rgb', depth_path='depth', seg_map_path='masks'),
    img_suffix='.png',
    metainfo=dict(classes=NYUDV2_CLASSES))


def _build(cls, **kwargs):
    """``cls`` on a TokenFusion-layout NYUDv2 folder."""
    if cls is RGBDDataset:
        kwargs = dict(NYU_AS_GENERIC, **kwargs)
    return cls(**kwargs)


both_classes = pytest.mark.parametrize('cls', [NYUDv2Dataset, RGBDDataset])


@both_classes
def test_missing_data_root(tmp_path, cls):
    missing = str(tmp_path / 'no_such_root')
    with pytest.raises(FileNotFoundError) as e:
        _build(cls, data_root=missing, ann_file='train.txt')
    assert cls.__name__ in str(e.value) and missing in str(e.value)


@both_classes
def test_missing_ann_file(nyu_root, cls):
    with pytest.raises(FileNotFoundError, match=f'{cls.__name__}.*val.txt'):
        _build(cls, data_root=nyu_root, ann_file='val.txt')


@both_classes
def test_missing_listed_file(nyu_copy, cls):
    depth = osp.join(nyu_copy, 'depth', '000001.png')
    os.remove(depth)
    with pytest.raises(FileNotFoundError) as e:
        _build(cls, data_root=nyu_copy, ann_file='train.txt')
    msg = str(e.value)
    assert cls.__name__ in msg and 'line 2' in msg
    assert osp.join(nyu_copy, 'train.txt') in msg and depth in msg
    # check_files=False defers the problem to loading
    ds = _build(
        cls,
        data_root=nyu_copy,
        ann_file='train.txt',
        check_files=False,
        pipeline=LOAD)
    with pytest.raises(FileNotFoundError, match=depth):
        ds[1]


@both_classes
def test_malformed_list_line(nyu_copy, cls):
    lst = write_list(
        osp.join(nyu_copy, 'bad.txt'), [
            'rgb/000000.png\tmasks/000000.png\tdepth/000000.png', '',
            'rgb/000001.png\tmasks/000001.png'
        ])
    with pytest.raises(ValueError) as e:
        _build(cls, data_root=nyu_copy, ann_file='bad.txt')
    msg = str(e.value)
    assert cls.__name__ in msg and 'line 3' in msg and lst in msg
    assert 'masks/000001.png' in msg


@both_classes
def test_empty_dataset(nyu_copy, cls):
    write_list(osp.join(nyu_copy, 'empty.txt'), ['', '  '])
    with pytest.raises(
            ValueError, match=f'{cls.__name__}: no samples found.*empty.txt'):
        _build(cls, data_root=nyu_copy, ann_file='empty.txt')


@both_classes
def test_pairing_by_name_orphans(nyu_copy, cls):
    ds = _build(cls, data_root=nyu_copy)  # no ann_file: pair by name
    assert len(ds) == 4
    os.remove(osp.join(nyu_copy, 'masks', '000002.png'))
    os.remove(osp.join(nyu_copy, 'rgb', '000003.png'))
    with pytest.raises(ValueError) as e:
        _build(cls, data_root=nyu_copy)
    msg = str(e.value)
    assert cls.__name__ in msg
    assert osp.join(nyu_copy, 'rgb', '000002.png') in msg  # no label
    assert osp.join(nyu_copy, 'depth', '000003.png') in msg  # no RGB
    assert 'partner' in msg


def test_generic_dataset_missing_folder_and_prefix(nyu_copy):
    with pytest.raises(FileNotFoundError, match='RGBDDataset: label folder'):
        RGBDDataset(
            data_root=nyu_copy,
            img_suffix='.png',
            data_prefix=dict(
                img_path='rgb', depth_path='depth', seg_map_path='label'))
    with pytest.raises(ValueError, match="RGBDDataset: data_prefix.*'depth"):
        RGBDDataset(data_root=nyu_copy, data_prefix=dict(img_path='rgb'))


def test_pairing_without_labels_for_inference(nyu_copy):
    ds = RGBDDataset(
        data_root=nyu_copy,
        img_suffix='.png',
        data_prefix=dict(img_path='rgb', depth_path='depth'),
        pipeline=[dict(type='LoadRGBDImageFromFile')])
    assert len(ds) == 4 and 'seg_map_path' not in ds.get_data_info(0)
    assert ds[0]['img'].shape == (48, 64, 6)


# ----------------------------------------------------------------------
# loading errors
# ----------------------------------------------------------------------
def test_depth_size_mismatch(nyu_copy):
    depth = osp.join(nyu_copy, 'depth', '000000.png')
    cv2.imwrite(depth, np.zeros((40, 64), np.uint16))
    ds = NYUDv2Dataset(data_root=nyu_copy, ann_file='train.txt', pipeline=LOAD)
    with pytest.raises(ValueError) as e:
        ds[0]
    msg = str(e.value)
    assert depth in msg and osp.join(nyu_copy, 'rgb', '000000.png') in msg
    assert '(40, 64)' in msg and '(48, 64)' in msg


def test_label_size_mismatch(nyu_copy):
    mask = osp.join(nyu_copy, 'masks', '000000.png')
    cv2.imwrite(mask, np.zeros((48, 60), np.uint8))
    ds = NYUDv2Dataset(data_root=nyu_copy, ann_file='train.txt', pipeline=LOAD)
    with pytest.raises(ValueError) as e:
        ds[0]
    msg = str(e.value)
    assert mask in msg and '(48, 60)' in msg and '(48, 64)' in msg


@pytest.mark.parametrize('folder', ['rgb', 'depth', 'masks'])
def test_corrupt_image(nyu_copy, folder):
    path = osp.join(nyu_copy, folder, '000000.png')
    with open(path, 'wb') as f:
        f.write(b'\x89PNG garbage, not an image' * 10)
    with pytest.raises(OSError, match='corrupt') as e:
        # the first sample's RGB and label are read at construction
        ds = NYUDv2Dataset(
            data_root=nyu_copy, ann_file='train.txt', pipeline=LOAD)
        ds[0]
    assert path in str(e.value)
    if folder != 'depth':
        assert 'line 1 of' in str(e.value)


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_out_of_range_label_warns_once_and_ignores(nyu_copy):
    masks = [osp.join(nyu_copy, 'masks', f'00000{i}.png') for i in (0, 1)]
    for path in masks:
        seg = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        seg[:4, :4] = 45
        seg[4:8, :4] = 40
        cv2.imwrite(path, seg)
    ds = NYUDv2Dataset(
        data_root=nyu_copy,
        ann_file='train.txt',
        size_mismatch='crop',
        pipeline=LOAD)
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        first, second = ds[0], ds[1]
    finally:
        logger.removeHandler(handler)
    warnings = [r for r in handler.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one-time
    msg = warnings[0].getMessage()
    assert masks[0] in msg and '40, 45' in msg and 'num_classes=40' in msg
    for results in (first, second):
        seg = results['gt_seg_map']
        assert (seg[:8, :4] == IGNORE).all() and seg.max() == IGNORE
        assert seg[seg != IGNORE].max() < 40


def test_sunrgbd_without_reduce_zero_label_warns(tmp_path):
    root = make_sunrgbd_dformer(
        tmp_path / 'sun', num_train=1, num_test=0, seed=3)
    ds = SUNRGBDDataset(
        data_root=root,
        ann_file='train.txt',
        reduce_zero_label=False,
        pipeline=[
            dict(type='LoadRGBDImageFromFile'),
            dict(type='LoadRGBDAnnotations', num_classes=37)
        ])
    stored = cv2.imread(ds.get_data_info(0)['seg_map_path'], 0)
    assert (stored == 37).any()
    seg = ds[0]['gt_seg_map']
    assert (seg[stored == 37] == IGNORE).all()


# ----------------------------------------------------------------------
# depth encodings
# ----------------------------------------------------------------------
def _pair(tmp_path, depth, name='depth.png', size=(8, 10)):
    rgb = np.full(size + (3, ), (10, 20, 30), np.uint8)  # B, G, R on disk
    cv2.imwrite(str(tmp_path / 'rgb.png'), rgb)
    cv2.imwrite(str(tmp_path / name), depth)
    return dict(
        img_path=str(tmp_path / 'rgb.png'), depth_path=str(tmp_path / name))


def test_depth_encodings(tmp_path):
    depth = np.arange(80, dtype=np.uint16).reshape(8, 10) * 300  # 0..23700
    results = _pair(tmp_path, depth)
    load = TRANSFORMS.build(dict(type='LoadRGBDImageFromFile'))
    img = load(dict(results))['img']
    np.testing.assert_array_equal(img[0, 0, :3], [30, 20, 10])  # RGB order
    np.testing.assert_array_equal(img[..., 3], depth.astype(np.float32))
    np.testing.assert_array_equal(img[..., 5], depth.astype(np.float32))

    scale = TRANSFORMS.build(
        dict(
            type='LoadRGBDImageFromFile',
            depth_encoding='scale',
            depth_scale=1e-3))
    np.testing.assert_allclose(
        scale(dict(results))['img'][..., 4], depth * 1e-3, rtol=1e-6)

    clip = TRANSFORMS.build(
        dict(
            type='LoadRGBDImageFromFile',
            depth_encoding='clip',
            depth_range=(1000, 11000)))
    expected = (np.clip(depth, 1000, 11000) - 1000) * 255. / 10000
    np.testing.assert_allclose(
        clip(dict(results))['img'][..., 3], expected, rtol=1e-6, atol=1e-4)

    # 3 equal channels are accepted by the depth encodings
    gray3 = np.repeat((depth // 100).astype(np.uint8)[..., None], 3, axis=2)
    results3 = _pair(tmp_path, gray3, name='gray3.png')
    np.testing.assert_array_equal(
        load(dict(results3))['img'][..., 3:], gray3.astype(np.float32))

    hha = TRANSFORMS.build(
        dict(type='LoadRGBDImageFromFile', depth_encoding='hha'))
    with pytest.raises(ValueError, match='3-channel.*depth.png'):
        hha(dict(results))
    with pytest.raises(ValueError, match="unknown depth_encoding 'log'"):
        TRANSFORMS.build(
            dict(type='LoadRGBDImageFromFile', depth_encoding='log'))
    with pytest.raises(ValueError, match='depth_range'):
        TRANSFORMS.build(
            dict(type='LoadRGBDImageFromFile', depth_encoding='clip'))


def test_pillow_rgb_backend_matches_cv2_on_png(nyu_root):
    info = NYUDv2Dataset(
        data_root=nyu_root, ann_file='train.txt').get_data_info(0)
    a = TRANSFORMS.build(dict(type='LoadRGBDImageFromFile'))(dict(info))
    b = TRANSFORMS.build(
        dict(type='LoadRGBDImageFromFile', imdecode_backend='pillow'))(
            dict(info))
    np.testing.assert_array_equal(a['img'], b['img'])


# ----------------------------------------------------------------------
# browse_dataset.py
# ----------------------------------------------------------------------
def test_browse_dataset_tool(nyu_root, tmp_path, monkeypatch):
    """The released layout (sample 1: depth larger than RGB, stretched):
    every tile at the RGB size, depth drawn where the RGB image is."""
    cfg = tmp_path / 'browse_cfg.py'
    cfg.write_text("custom_imports = dict(imports=['geminifusion_mmseg'], "
                   'allow_failed_imports=False)\n'
                   "default_scope = 'mmseg'\n"
                   'train_dataloader = dict(batch_size=1, dataset=dict(\n'
                   f"    type='NYUDv2Dataset', data_root={nyu_root!r},\n"
                   "    size_mismatch='stretch',\n"
                   "    ann_file='train.txt', pipeline=[\n"
                   "        dict(type='LoadRGBDImageFromFile'),\n"
                   "        dict(type='LoadRGBDAnnotations'),\n"
                   "        dict(type='RandomFlip', prob=0.5),\n"
                   "        dict(type='PackSegInputs')]))\n")
    out = tmp_path / 'out'
    monkeypatch.setattr(sys, 'argv', [
        'browse_dataset.py',
        str(cfg), '--output-dir',
        str(out), '--num', '2', '--phase', 'train'
    ])
    runpy.run_path(
        osp.join(REPO, 'tools', 'misc', 'browse_dataset.py'),
        run_name='__main__')
    files = sorted(os.listdir(out))
    assert files == ['0000_000000.png', '0001_000001.png']
    canvas = cv2.imread(str(out / files[0]))
    # titled tiles: rgb | depth | label
    assert canvas.shape == (48 + TITLE_HEIGHT, 3 * 64, 3)
    # the label tile (below its title) shows the palette colours of the
    # synthetic labels, never the ignore colour everywhere
    label_tile = canvas[TITLE_HEIGHT:, 2 * 64:, ::-1]
    assert len(np.unique(label_tile.reshape(-1, 3), axis=0)) > 1
    # the border-cropped sample: three tiles of the RGB size
    h, w = cv2.imread(osp.join(nyu_root, 'rgb', '000001.png')).shape[:2]
    assert (h, w) != (48, 64)
    canvas = cv2.imread(str(out / files[1]))
    assert canvas.shape == (h + TITLE_HEIGHT, 3 * w, 3)
    depth_tile = canvas[TITLE_HEIGHT:, w:2 * w]
    assert (depth_tile.max(axis=2) > 0).mean() > 0.5

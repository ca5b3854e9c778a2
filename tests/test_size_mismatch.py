"""Modalities stored at another size than RGB (``size_mismatch``): the
centre crop against TokenFusion's ``CropAlignToMask``, the release's
per-key resize of a stretched modality, the errors, the in-memory twins,
the K-modality loader, and the transforms between the loader and the
resize (geminifusion_mmseg/datasets/transforms/size_mismatch.py)."""
import logging
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.logging import MMLogger
from mmseg.registry import TRANSFORMS

from geminifusion_mmseg.datasets import MultiModalFolderDataset
from geminifusion_mmseg.datasets.transforms import size_mismatch
from geminifusion_mmseg.testing.literal_augmentation import CropAlignToMask
from geminifusion_mmseg.testing.literal_protocol import resize as tv_protocol
from tests.helpers import write_list

# (RGB / mask size, depth size): odd and even differences, one side equal
CROPS = [((41, 57), (48, 64)), ((44, 64), (48, 64)), ((39, 52), (44, 61))]


def _write(path, image):
    if not cv2.imwrite(str(path), image):
        raise OSError(path)
    return str(path)


def _pair(tmp_path, rgb_size, depth_size, seed=0):
    """An RGB PNG and a 16-bit depth PNG of the given sizes (files), and
    the arrays (RGB order, depth as stored)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, rgb_size + (3, )).astype(np.uint8)
    yy, xx = np.mgrid[0:depth_size[0], 0:depth_size[1]]
    depth = (800 + 97 * yy + 31 * xx + rng.integers(0, 300, yy.shape))
    depth = depth.astype(np.uint16)
    tag = f'{rgb_size[0]}x{rgb_size[1]}'
    info = dict(
        img_path=_write(tmp_path / f'rgb{tag}.png', rgb[..., ::-1]),
        depth_path=_write(tmp_path / f'depth{tag}.png', depth))
    return info, rgb, depth


def _load(policy=None, ndarray=False, **kwargs):
    name = 'LoadRGBDImageFromNDArray' if ndarray else 'LoadRGBDImageFromFile'
    return TRANSFORMS.build(dict(type=name, size_mismatch=policy, **kwargs))


# + the NYU converter's --crop-border output: 468x625 beside 480x640 depth
@pytest.mark.parametrize('rgb_size,depth_size',
                         CROPS + [((468, 625), (480, 640))])
def test_crop_is_crop_align_to_mask(tmp_path, rgb_size, depth_size):
    """'crop' (file loader and its in-memory twin) cuts the depth exactly
    as TokenFusion's CropAlignToMask does to match the mask."""
    info, rgb, depth = _pair(tmp_path, rgb_size, depth_size)
    ref = CropAlignToMask()(dict(
        inputs=['depth'],
        depth=np.repeat(depth[..., None], 3, axis=2),
        mask=np.zeros(rgb_size, np.uint8)))['depth']
    for results in (_load()(dict(info, size_mismatch='crop')),
                    _load('crop')(dict(info)),
                    _load('crop', ndarray=True)(dict(img=rgb, depth=depth))):
        assert results['img'].shape == rgb_size + (6, )
        assert results['ori_shape'] == rgb_size
        np.testing.assert_array_equal(results['img'][..., 3:], ref)
        np.testing.assert_array_equal(results['img'][..., :3], rgb)
        assert size_mismatch.UNALIGNED_KEY not in results


def test_crop_refuses_a_smaller_modality(tmp_path):
    info, _, _ = _pair(tmp_path, (40, 50), (44, 48))  # narrower depth
    with pytest.raises(ValueError) as e:
        _load('crop')(dict(info))
    msg = str(e.value)
    assert info['depth_path'] in msg and info['img_path'] in msg
    assert '(44, 48)' in msg and '(40, 50)' in msg and 'smaller' in msg


def test_error_names_files_sizes_and_the_option(tmp_path):
    info, rgb, depth = _pair(tmp_path, (41, 57), (48, 64))
    for load, results in ((_load(), dict(info)),
                          (_load('error'), dict(info,
                                                size_mismatch='stretch')),
                          (_load(ndarray=True), dict(img=rgb, depth=depth))):
        with pytest.raises(ValueError) as e:
            load(results)
        msg = str(e.value)
        assert '(48, 64)' in msg and '(41, 57)' in msg
        assert 'size_mismatch' in msg and "'stretch'" in msg
        assert "'crop'" in msg
        if 'img_path' in results:
            assert info['depth_path'] in msg and info['img_path'] in msg


@pytest.mark.parametrize('rgb_size,depth_size', CROPS)
@pytest.mark.parametrize('short_side', [48, 30])
def test_stretch_resizes_each_modality_from_its_own_size(
        tmp_path, rgb_size, depth_size, short_side):
    """'stretch' + ResizeShortSideToMultiple = the release's Resize, which
    resizes every key from its own size (literal_protocol.resize), for the
    file loader and the in-memory twin; RandomFlip before it is replayed
    on the depth at its own size."""
    info, rgb, depth = _pair(tmp_path, rgb_size, depth_size)
    sample = dict(
        rgb=torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32)),
        depth=torch.from_numpy(
            np.repeat(depth[None], 3, axis=0).astype(np.float32)))
    ref = tv_protocol(dict(sample), short_side)
    ref = torch.cat([ref['rgb'], ref['depth']]).permute(1, 2, 0).numpy()
    flipped = tv_protocol({
        k: v.flip(-1)
        for k, v in sample.items()
    }, short_side)
    flipped = torch.cat([flipped['rgb'], flipped['depth']]).permute(1, 2,
                                                                    0).numpy()
    resize = dict(type='ResizeShortSideToMultiple', short_side=short_side)
    flip = dict(type='RandomFlip', prob=1.0)
    for load, results in ((dict(type='LoadRGBDImageFromFile'), dict(info)),
                          (dict(type='LoadRGBDImageFromNDArray'),
                           dict(img=rgb, depth=depth))):
        results['size_mismatch'] = 'stretch'
        for steps, expected in (([load, resize], ref), ([load, flip,
                                                         resize], flipped)):
            out = Compose(steps)(dict(results))
            assert size_mismatch.UNALIGNED_KEY not in out
            np.testing.assert_allclose(
                out['img'], expected, rtol=2e-6, atol=1e-3)


def _records():
    """Capture the current logger's warnings."""

    class Handler(logging.Handler):

        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Handler()
    MMLogger.get_current_instance().addHandler(handler)
    return handler


def _stretch_pipeline(info, *middle, resize=None):
    resize = resize or dict(type='ResizeShortSideToMultiple', short_side=40)
    steps = [dict(type='LoadRGBDImageFromFile')] + list(middle) + [resize]
    return Compose(steps)(dict(info, size_mismatch='stretch'))


def test_transforms_between_the_loader_and_the_resize(tmp_path):
    """Corruptions and dropout settle the depth they change (their change
    survives the resize); RGB-only transforms keep the exact per-key
    resize; anything else that changes the depth channels, or the image
    size, makes the resize use the copy stretched at load, with a warning
    once."""
    info, _, _ = _pair(tmp_path, (41, 57), (48, 64))
    clean = _stretch_pipeline(info)
    crop = dict(type='RandomRescaleCrop', crop_size=(40, 48))

    # the depth corruptions act on the stretched depth, the change stays
    missing = _stretch_pipeline(info, dict(type='DepthMissing'))
    assert (missing['img'][..., 3:] == 0).all()
    np.testing.assert_array_equal(missing['img'][..., :3],
                                  clean['img'][..., :3])
    noisy = _stretch_pipeline(info, dict(type='DepthNoise', severity=5))
    assert not np.allclose(noisy['img'][..., 3:], clean['img'][..., 3:])
    degraded = _stretch_pipeline(
        info,
        dict(
            type='RandomDepthDegradation',
            prob=1.0,
            corruptions=('depth_missing', )),
        resize=crop)
    assert (degraded['img'][..., 3:] == 0).all()
    dropped = _stretch_pipeline(
        info,
        dict(type='RandomModalityDrop', rgb_prob=0., depth_prob=1.),
        resize=crop)
    assert (dropped['img'][..., 3:] == 0).all()
    assert dropped['img'][..., :3].max() > 0

    # RGB-only transforms: the depth still comes from its own size
    handler = _records()
    size_mismatch._WARNED.clear()
    try:
        dark = _stretch_pipeline(info, dict(type='RGBLowLight'),
                                 dict(type='RGBColorJitter', prob=1.0),
                                 dict(type='RGBGaussianBlur', prob=1.0))
        np.testing.assert_array_equal(dark['img'][..., 3:], clean['img'][...,
                                                                         3:])
        assert not np.array_equal(dark['img'][..., :3], clean['img'][..., :3])
        assert not handler.messages

        # an mmseg resize before ours: the stretched copy is used, warned
        # once (whatever the sizes)
        for scale in ((70, 50), (64, 45)):
            mm_resize = dict(type='Resize', scale=scale, keep_ratio=False)
            out = _stretch_pipeline(info, dict(type='RandomFlip', prob=1.0),
                                    mm_resize)
        assert len(handler.messages) == 1
        assert 'image size changed' in handler.messages[0]
        assert "'depth'" in handler.messages[0]
        assert 'ResizeShortSideToMultiple' in handler.messages[0]
        assert out['img'].shape == clean['img'].shape
        # a transform that changes the depth channels without settling
        results = _load()(dict(info, size_mismatch='stretch'))
        results['img'][..., 3:] *= 2
        changed = TRANSFORMS.build(
            dict(type='ResizeShortSideToMultiple', short_side=40))(
                results)
        assert len(handler.messages) == 2
        assert 'changed its channels' in handler.messages[1]
        stretched = _load()(dict(info, size_mismatch='stretch'))
        stretched.pop(size_mismatch.UNALIGNED_KEY)
        stretched['img'][..., 3:] *= 2
        expected = TRANSFORMS.build(
            dict(type='ResizeShortSideToMultiple',
                 short_side=40))(stretched)['img']
        np.testing.assert_array_equal(changed['img'], expected)
    finally:
        MMLogger.get_current_instance().removeHandler(handler)


def test_pack_seg_inputs_ignores_the_side_key(tmp_path):
    info, _, _ = _pair(tmp_path, (41, 57), (48, 64))
    results = _load()(dict(info, size_mismatch='stretch'))
    assert size_mismatch.UNALIGNED_KEY in results
    packed = TRANSFORMS.build(dict(type='PackSegInputs'))(results)
    assert set(packed) == {'inputs', 'data_samples'}
    assert size_mismatch.UNALIGNED_KEY not in packed['data_samples']
    assert tuple(packed['inputs'].shape) == (6, 41, 57)


def _multimodal_root(tmp_path):
    """rgb (h, w), depth (h, w), lidar the larger full frame, event at
    half the resolution: a MultiModalFolderDataset layout."""
    rng = np.random.default_rng(3)
    root = tmp_path / 'mm'
    for folder in ('rgb', 'depth', 'lidar', 'event', 'labels'):
        (root / folder).mkdir(parents=True)
    sizes = {'a': (30, 42), 'b': (33, 47)}
    for name, (h, w) in sizes.items():
        _write(root / 'rgb' / f'{name}.png',
               rng.integers(0, 256, (h, w, 3)).astype(np.uint8))
        _write(root / 'depth' / f'{name}.png',
               rng.integers(0, 9000, (h, w)).astype(np.uint16))
        _write(root / 'lidar' / f'{name}.png',
               rng.integers(0, 256, (36, 50)).astype(np.uint8))
        _write(root / 'event' / f'{name}.png',
               rng.integers(0, 256, (h // 2, w // 2)).astype(np.uint8))
        _write(root / 'labels' / f'{name}.png',
               rng.integers(0, 5, (h, w)).astype(np.uint8))
    write_list(root / 'train.txt', list(sizes))
    return str(root)


@pytest.mark.parametrize('policy', ['stretch', 'crop', 'error'])
def test_k_modality_loader_with_a_mismatched_modality(tmp_path, policy):
    """LoadMultiModalImageFromFile (and its in-memory twin) with a LiDAR
    image larger than RGB: the dataset's policy; the event map of
    resize_to_rgb is still resized at load (nearest)."""
    root = _multimodal_root(tmp_path)
    modalities = ('rgb', 'depth', 'event', 'lidar')
    load = dict(
        type='LoadMultiModalImageFromFile',
        encodings=dict(depth='raw', event='image', lidar='image'),
        resize_to_rgb=('event', ))
    ds = MultiModalFolderDataset(
        data_root=root,
        ann_file='train.txt',
        modalities=modalities,
        size_mismatch=policy,
        metainfo=dict(classes=tuple('abcde')),
        pipeline=[load,
                  dict(type='ResizeShortSideToMultiple', short_side=40)])
    info = ds.get_data_info(1)
    assert info['size_mismatch'] == policy
    lidar = cv2.imread(osp.join(root, 'lidar', 'b.png'), -1)
    rgb_size = (33, 47)
    if policy == 'error':
        with pytest.raises(ValueError) as e:
            ds[1]
        msg = str(e.value)
        assert "lidar image size (36, 50)" in msg and '(33, 47)' in msg
        assert osp.join(root, 'lidar', 'b.png') in msg
        assert 'size_mismatch' in msg and 'resize_to_rgb' in msg
        return
    loaded = TRANSFORMS.build(load)(dict(info))
    arrays = dict(
        img=cv2.imread(info['img_path'])[..., ::-1].copy(),
        modalities=modalities,
        size_mismatch=policy,
        modality_arrays={
            m: cv2.imread(info['modality_paths'][m], -1)
            for m in modalities[1:]
        })
    twin = TRANSFORMS.build(dict(load, type='LoadMultiModalImageFromNDArray'))(
        arrays)
    for results in (loaded, twin):
        assert results['img'].shape == rgb_size + (12, )
        event = cv2.imread(info['modality_paths']['event'], -1)
        nearest = F.interpolate(
            torch.from_numpy(event.astype(np.float32))[None, None],
            size=rgb_size,
            mode='nearest')[0, 0].numpy()
        np.testing.assert_array_equal(results['img'][..., 6], nearest)
    np.testing.assert_array_equal(loaded['img'], twin['img'])
    if policy == 'crop':
        np.testing.assert_array_equal(loaded['img'][..., 9],
                                      lidar[1:34, 1:48].astype(np.float32))
        assert size_mismatch.UNALIGNED_KEY not in loaded
        return
    # 'stretch': LiDAR kept at its own size for the resize, in channels
    # 9-11; through the dataset's resize it is resized from (36, 50)
    kept = loaded[size_mismatch.UNALIGNED_KEY]
    assert list(kept) == ['lidar'] and kept['lidar'].channels == (9, 12)
    out = ds[1]['img']
    sample = dict(
        rgb=torch.from_numpy(loaded['img'][..., :3].transpose(2, 0, 1)),
        lidar=torch.from_numpy(
            np.repeat(lidar[None], 3, axis=0).astype(np.float32)))
    ref = tv_protocol(sample, 40)
    np.testing.assert_allclose(
        out[..., 9:],
        ref['lidar'].permute(1, 2, 0).numpy(),
        rtol=1e-6,
        atol=1e-3)
    np.testing.assert_allclose(
        out[..., :3],
        ref['rgb'].permute(1, 2, 0).numpy(),
        rtol=1e-6,
        atol=1e-3)

"""6-channel RGB-D samples through mmseg's transforms and ours."""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmseg.registry import MODELS, TRANSFORMS

from geminifusion_mmseg.datasets import (NYUDv2Dataset,
                                         ResizeShortSideToMultiple,
                                         nearest_resize)
from tests.helpers import (IGNORE, class_color, depth_to_label,
                           make_nyudv2_tokenfusion)

MEAN = [123.675, 116.28, 103.53, 0, 0, 0]
STD = [58.395, 57.12, 57.375, 255, 255, 255]


def _sample(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 6), np.float32)
    img[..., :3] = rng.uniform(0, 255, (h, w, 3))
    img[..., 3:] = rng.integers(0, 20000, (h, w, 1))  # 16-bit depth, raw
    seg = rng.integers(0, 40, (h, w)).astype(np.uint8)
    return dict(
        img=img,
        gt_seg_map=seg,
        seg_fields=['gt_seg_map'],
        img_shape=(h, w),
        ori_shape=(h, w),
        img_path='x.png',
        seg_map_path='y.png',
        reduce_zero_label=False)


# ----------------------------------------------------------------------
# photometric transforms: RGB only
# ----------------------------------------------------------------------
def _tv_jitter(rgb, b, c, s, bound):
    """torchvision's adjust_brightness/contrast/saturation on a float
    (3, H, W) tensor, whose clamp bound is ``bound``."""

    def blend(x, y, r):
        return (r * x + (1.0 - r) * y).clamp(0, bound)

    def gray(x):
        return (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]

    x = blend(rgb, torch.zeros_like(rgb), b)
    x = blend(x, torch.mean(gray(x), dim=(-3, -2, -1), keepdim=True), c)
    return blend(x, gray(x), s)


@pytest.mark.parametrize('bound', [255., 1.])
def test_color_jitter_matches_torchvision_formulas(bound):
    results = _sample()
    depth = results['img'][..., 3:].copy()
    t = TRANSFORMS.build(
        dict(type='RGBColorJitter', prob=1., clip_range=(0., bound)))
    t._random_factors = lambda: (1.3, 0.7, 1.4)
    expected = _tv_jitter(
        torch.from_numpy(results['img'][..., :3].copy()).permute(2, 0, 1), 1.3,
        0.7, 1.4, bound).permute(1, 2, 0).numpy()
    out = t(results)['img']
    np.testing.assert_allclose(out[..., :3], expected, atol=2e-3 * bound)
    assert np.array_equal(out[..., 3:], depth)  # bit-identical
    if bound == 1.:  # the release's clamp: RGB ends inside [0, 1]
        assert out[..., :3].max() <= 1.


def test_photometric_rgb_only():
    for cfg in (dict(type='RGBColorJitter',
                     prob=1.), dict(type='RGBGaussianBlur', prob=1.)):
        results = _sample()
        before = results['img'].copy()
        out = TRANSFORMS.build(cfg)(results)['img']
        assert out.dtype == np.float32 and out.shape == before.shape
        assert out[..., :3].tobytes() != before[..., :3].tobytes()
        assert out[..., 3:].tobytes() == before[..., 3:].tobytes()
        results = _sample()
        out = TRANSFORMS.build(dict(cfg, prob=0.))(results)['img']
        assert out.tobytes() == before.tobytes()


def test_gaussian_blur_matches_torchvision_kernel():
    results = _sample()
    rgb = torch.from_numpy(results['img'][..., :3].copy()).permute(2, 0, 1)
    out = TRANSFORMS.build(dict(type='RGBGaussianBlur', prob=1.))(results)
    # torchvision gaussian_blur((3, 3)): sigma 0.8, reflect padding
    x = torch.linspace(-1, 1, 3)
    k1 = torch.exp(-0.5 * (x / 0.8)**2)
    k1 = k1 / k1.sum()
    k2 = (k1[:, None] * k1[None, :]).expand(3, 1, 3, 3)
    ref = F.conv2d(
        F.pad(rgb[None], (1, 1, 1, 1), mode='reflect'), k2,
        groups=3)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out['img'][..., :3], ref, atol=1e-3)


# ----------------------------------------------------------------------
# evaluation resize of the published protocol
# ----------------------------------------------------------------------
@pytest.mark.parametrize('shape, final', [((480, 640), (480, 640)),
                                          ((427, 561), (480, 640)),
                                          ((530, 730), (480, 672)),
                                          ((640, 480), (640, 480)),
                                          ((241, 320), (480, 640))])
def test_resize_short_side_to_multiple_sizes(shape, final):
    mid, out = ResizeShortSideToMultiple().target_sizes(*shape)
    assert out == final and min(mid) == 480


def test_resize_short_side_identity_for_nyudv2():
    results = _sample(480, 640)
    img, seg = results['img'].copy(), results['gt_seg_map'].copy()
    out = TRANSFORMS.build(dict(type='ResizeShortSideToMultiple'))(results)
    assert np.array_equal(out['img'], img)
    assert np.array_equal(out['gt_seg_map'], seg)
    assert out['ori_shape'] == out['img_shape'] == (480, 640)


@pytest.mark.parametrize(
    'shape, mid, final',
    [
        ((427, 561), (480, 631), (480, 640)),  # upscaled (SUN RGB-D-like)
        ((530, 730), (480, 661), (480, 672)),  # DOWNscaled: short side > 480
    ])
def test_resize_short_side_matches_release_two_step(shape, mid, final):
    """The release's ``Resize`` on float tensors: torchvision's tensor
    resize = F.interpolate (bilinear, align_corners False, no antialias)
    for the image and nearest for the label, in two steps."""
    results = _sample(*shape)
    img = torch.from_numpy(results['img'].copy()).permute(2, 0, 1)[None]
    seg = torch.from_numpy(results['gt_seg_map'].astype(np.int64))[None, None]
    out = ResizeShortSideToMultiple(short_side=480, size_divisor=32)(results)
    assert out['img'].shape == final + (6, )
    assert out['gt_seg_map'].shape == final
    assert out['ori_shape'] == out['img_shape'] == final
    assert out['gt_seg_map'].dtype == np.uint8
    ref_seg, ref_img = seg.float(), img
    for size in (mid, final):
        ref_seg = F.interpolate(ref_seg, size=size, mode='nearest')
        ref_img = F.interpolate(
            ref_img,
            size=size,
            mode='bilinear',
            align_corners=False,
            antialias=False)
    assert np.array_equal(out['gt_seg_map'], ref_seg[0, 0].numpy())
    assert np.array_equal(out['img'], ref_img[0].permute(1, 2, 0).numpy())


def test_downscale_is_not_antialiased():
    """A 1-pixel checkerboard downscaled 3x: sampling (the release) picks
    single input pixels (0 or 255); antialiasing would average 3x3 blocks
    into greys."""
    board = (np.indices((1440, 1920)).sum(0) % 2 * 255).astype(np.float32)
    results = dict(
        img=np.repeat(board[..., None], 6, axis=2),
        img_shape=board.shape,
        ori_shape=board.shape,
        seg_fields=[])
    out = ResizeShortSideToMultiple(short_side=480)(results)['img']
    assert out.shape == (480, 640, 6)
    assert set(np.unique(out)) == {0., 255.}
    antialiased = F.interpolate(
        torch.from_numpy(board)[None, None],
        size=(480, 640),
        mode='bilinear',
        align_corners=False,
        antialias=True)
    assert not np.array_equal(out[..., 0], antialiased[0, 0].numpy())


def test_nearest_resize_matches_torch_on_odd_sizes():
    rng = np.random.default_rng(1)
    seg = rng.integers(0, 255, (37, 53)).astype(np.uint8)
    for size in ((61, 97), (20, 30), (37, 53), (480, 641)):
        ref = F.interpolate(
            torch.from_numpy(seg).float()[None, None],
            size=size,
            mode='nearest')[0, 0].numpy()
        assert np.array_equal(nearest_resize(seg, size), ref)


# ----------------------------------------------------------------------
# mmseg's own transforms on the 6-channel float32 image
# ----------------------------------------------------------------------
@pytest.mark.parametrize('cfg', [
    dict(
        type='RandomResize',
        scale=(256, 48),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='Resize', scale=(100, 80), keep_ratio=False),
    dict(
        type='Resize',
        scale=(100, 80),
        keep_ratio=True,
        interpolation='bicubic'),
    dict(type='RandomCrop', crop_size=(32, 32), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=1.0),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='RGBDPad', size=(80, 64), pad_val=dict(img=0, seg=255)),
])
def test_stock_geometric_transforms_on_6_channels(cfg):
    results = _sample()
    out = TRANSFORMS.build(cfg)(results)
    img, seg = out['img'], out['gt_seg_map']
    assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 6
    assert img.shape[:2] == seg.shape == tuple(out['img_shape'])
    # the depth channels stay equal to each other (moved together)
    assert np.array_equal(img[..., 3], img[..., 5])


def test_rgbd_pad_values():
    results = _sample(30, 40)
    out = TRANSFORMS.build(
        dict(
            type='RGBDPad',
            size=(64, 48),
            pad_val=dict(img=(1, 2, 3, 4, 5, 6), seg=255)))(
                results)
    assert out['img'].shape == (48, 64, 6) and out['pad_shape'][:2] == (48, 64)
    assert (out['img'][30:, :, 4] == 5).all() and (out['img'][:, 40:, 0]
                                                   == 1).all()
    assert (out['gt_seg_map'][30:] == 255).all()
    assert (out['gt_seg_map'][:, 40:] == 255).all()
    out = TRANSFORMS.build(dict(type='RGBDPad', size_divisor=32))(_sample())
    assert out['img'].shape == (64, 64, 6)


def test_pack_and_test_time_aug_on_6_channels():
    results = _sample()
    packed = TRANSFORMS.build(dict(type='PackSegInputs'))(dict(results))
    assert packed['inputs'].shape == (6, 48, 64)
    assert packed['inputs'].dtype == torch.float32
    tta = TRANSFORMS.build(
        dict(
            type='TestTimeAug',
            transforms=[[
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in (0.5, 1.5)
            ], [dict(type='RandomFlip', prob=p) for p in (0., 1.)],
                        [dict(type='PackSegInputs')]]))
    out = tta(dict(results))
    assert len(out['inputs']) == 4
    assert [tuple(x.shape)
            for x in out['inputs']] == [(6, 24, 32)] * 2 + [(6, 72, 96)] * 2
    flipped = out['inputs'][1]
    assert torch.equal(flipped, out['inputs'][0].flip(-1))


def test_seg_data_preprocessor_normalises_6_channels():
    results = _sample()
    raw = results['img'].copy()
    packed = TRANSFORMS.build(dict(type='PackSegInputs'))(results)
    pre = MODELS.build(
        dict(
            type='SegDataPreProcessor',
            mean=MEAN,
            std=STD,
            bgr_to_rgb=False,
            pad_val=0,
            seg_pad_val=255,
            size=(64, 64)))
    out = pre(
        dict(inputs=[packed['inputs']], data_samples=[packed['data_samples']]),
        training=True)
    x = out['inputs'][0].numpy()
    assert x.shape == (6, 64, 64)
    np.testing.assert_allclose(
        x[3:, :48], np.moveaxis(raw[..., 3:], -1, 0) / 255., rtol=1e-6)
    assert x[3:, :48].max() > 70  # 16-bit mm depth / 255, as published
    rgb = (raw[..., :3] - np.array(MEAN[:3])) / np.array(STD[:3])
    np.testing.assert_allclose(
        x[:3, :48], np.moveaxis(rgb, -1, 0), rtol=1e-5, atol=1e-5)
    assert (x[:, 48:] == 0).all()
    seg = out['data_samples'][0].gt_sem_seg.data[0].numpy()
    assert (seg[48:] == 255).all()


# ----------------------------------------------------------------------
# alignment of RGB, depth and label through the full training pipeline
# ----------------------------------------------------------------------
def _near_label_edge(seg, radius=2):
    """Pixels within ``radius`` of a label change (or of the border)."""
    h, w = seg.shape
    padded = np.pad(
        seg.astype(np.int64), radius, mode='constant', constant_values=-1)
    edge = np.zeros((h, w), bool)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[radius + dy:radius + dy + h,
                             radius + dx:radius + dx + w]
            edge |= shifted != seg
    return edge


@pytest.fixture(scope='module')
def aligned_root(tmp_path_factory):
    return make_nyudv2_tokenfusion(
        tmp_path_factory.mktemp('aligned'),
        num_train=3,
        num_test=0,
        size=(96, 128),
        block=16,
        seed=7)


def _train_pipeline(photometric_prob, geometry):
    crop = (64, 64)
    if geometry == 'release':
        rescale_crop = [dict(type='RandomRescaleCrop', crop_size=crop)]
    else:  # mmseg's transforms
        rescale_crop = [
            dict(
                type='RandomResize',
                scale=(4 * crop[1], crop[0]),
                ratio_range=(0.5, 2.0),
                keep_ratio=True),
            dict(type='RandomCrop', crop_size=crop, cat_max_ratio=0.75),
            dict(
                type='RGBDPad',
                size=(crop[1], crop[0]),
                pad_val=dict(img=0, seg=255))
        ]
    return [
        dict(type='LoadRGBDImageFromFile'),
        dict(type='LoadRGBDAnnotations'),
        dict(type='RGBColorJitter', prob=photometric_prob),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RGBGaussianBlur', prob=photometric_prob),
    ] + rescale_crop


@pytest.mark.parametrize('geometry', ['release', 'mmseg'])
@pytest.mark.parametrize('photometric_prob', [0.5, 0.])
def test_alignment_through_training_pipeline(aligned_root, photometric_prob,
                                             geometry):
    """The released layout with size_mismatch='crop': depth, RGB and label
    stay registered through the training transforms."""
    ds = NYUDv2Dataset(
        data_root=aligned_root, ann_file='train.txt', size_mismatch='crop')
    pipeline = Compose(_train_pipeline(photometric_prob, geometry))
    shapes, checked = set(), 0
    for seed in range(4):
        np.random.seed(seed)
        random.seed(seed)
        for idx in range(len(ds)):
            out = pipeline(ds.get_data_info(idx))
            img, seg = out['img'], out['gt_seg_map']
            assert img.shape == (64, 64, 6) and seg.shape == (64, 64)
            shapes.add(out['scale_factor'])
            assert np.array_equal(img[..., 3], img[..., 4])
            assert np.array_equal(img[..., 3], img[..., 5])
            interior = ~_near_label_edge(seg)
            assert interior.mean() > 0.2
            from_depth = depth_to_label(img[..., 3], bits=16)
            assert np.array_equal(from_depth[interior], seg[interior])
            if photometric_prob == 0:
                known = interior & (seg != IGNORE)
                colour = class_color(seg).astype(np.float32)
                diff = np.abs(img[..., :3] - colour)[known]
                assert diff.max() <= 8.01  # the noise of the synthetic RGB
            checked += 1
    assert checked == 12 and len(shapes) > 3  # several scales were drawn

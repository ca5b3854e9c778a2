"""Sensor-failure corruptions, modality dropout and depth degradation: the
statistics each one promises, seeding, and that labels are never touched."""
import math

import numpy as np
import pytest
from mmengine.config import Config
from mmseg.registry import DATASETS, TRANSFORMS

# yapf: disable
from geminifusion_mmseg.datasets.transforms import (CORRUPTIONS, DepthHoles,
                                                    DepthMisregistration,
                                                    DepthMissing, DepthNoise,
                                                    DepthQuantisation,
                                                    RandomDepthDegradation,
                                                    RandomModalityDrop,
                                                    RGBLowLight, RGBMissing,
                                                    RGBMotionBlur,
                                                    build_corruption,
                                                    depth_missing_value,
                                                    encode_depth)
# yapf: enable
from tests.helpers.tiny_configs import REPO

H, W = 96, 128


def sample(depth_mm=2000.0, rgb=None, seed=0, path='rgb/000001.png'):
    """A results dict: textured RGB, constant raw depth (mm), a label."""
    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 6), np.float32)
    img[..., :3] = rng.uniform(40, 220, (H, W, 3)) if rgb is None else rgb
    img[..., 3:] = np.float32(depth_mm)
    label = rng.integers(0, 6, (H, W)).astype(np.uint8)
    return dict(
        img=img, img_path=path, gt_seg_map=label, seg_fields=['gt_seg_map'])


def run(cfg, results):
    return TRANSFORMS.build(cfg)(results)


# ------------------------------------------------------------ common rules
@pytest.mark.parametrize('name', list(CORRUPTIONS))
@pytest.mark.parametrize('severity', [1, 5])
def test_one_modality_changes_and_the_label_never(name, severity):
    before = sample(
        depth_mm=np.random.default_rng(1).uniform(800, 4500, (H, W,
                                                              1)).repeat(3, 2))
    clean = {
        k: (v.copy() if isinstance(v, np.ndarray) else v)
        for k, v in before.items()
    }
    out = run(build_corruption(name, severity), before)
    img = out['img']
    assert img.shape == (H, W, 6) and img.dtype == np.float32
    np.testing.assert_array_equal(out['gt_seg_map'], clean['gt_seg_map'])
    rgb, depth = slice(0, 3), slice(3, 6)
    touched, kept = (depth, rgb) if CORRUPTIONS[name].MODALITY == 'depth' \
        else (rgb, depth)
    np.testing.assert_array_equal(img[..., kept], clean['img'][..., kept])
    assert not np.array_equal(img[..., touched], clean['img'][..., touched])
    if CORRUPTIONS[name].MODALITY == 'depth':  # the 3 channels stay equal
        np.testing.assert_array_equal(img[..., 3], img[..., 4])
        np.testing.assert_array_equal(img[..., 3], img[..., 5])


@pytest.mark.parametrize('name', list(CORRUPTIONS))
def test_seeded_per_sample_and_global_rng_untouched(name):
    cfg = build_corruption(name, 3)
    np.random.seed(123)
    a = run(cfg, sample(path='a.png'))['img']
    state = np.random.get_state()[1].copy()
    a2 = run(cfg, sample(path='a.png'))['img']
    assert np.array_equal(np.random.get_state()[1], state)
    np.testing.assert_array_equal(a, a2)  # same sample, same corruption
    if name in ('depth_holes', 'depth_noise', 'depth_misregistration',
                'rgb_low_light', 'rgb_motion_blur'):  # random ones
        b = run(cfg, sample(path='b.png'))['img']
        other_seed = run(dict(cfg, seed=1), sample(path='a.png'))['img']
        assert not np.array_equal(a, b)
        assert not np.array_equal(a, other_seed)


def test_unknown_names_and_levels_are_clear_errors():
    with pytest.raises(KeyError, match='depth_holes.*rgb_missing'):
        build_corruption('depth_blur')
    with pytest.raises(ValueError, match='severity must be one of'):
        DepthNoise(severity=6)
    with pytest.raises(ValueError, match="unknown depth_encoding 'mm'"):
        DepthHoles(depth_encoding='mm')
    with pytest.raises(ValueError, match="needs metric depth.*'hha'"):
        DepthNoise(depth_encoding='hha')
    with pytest.raises(ValueError, match='expects the 6-channel'):
        DepthMissing()(dict(img=np.zeros((4, 4, 3), np.float32)))
    with pytest.raises(ValueError, match='not a depth corruption'):
        RandomDepthDegradation(corruptions=['rgb_low_light'])


# ------------------------------------------------------------ missing
@pytest.mark.parametrize('encoding,kwargs,expected', [
    ('raw', {}, 0.0),
    ('scale', dict(depth_scale=1e-3), 0.0),
    ('clip', dict(depth_range=(0, 10000)), 0.0),
    ('clip', dict(depth_range=(-1000, 9000)), 25.5),
    ('hha', {}, 0.0),
])
def test_depth_missing_value_is_what_a_stored_zero_encodes_to(
        encoding, kwargs, expected):
    value = depth_missing_value(encoding, **kwargs)
    assert value == pytest.approx(expected)
    if encoding != 'hha':  # the loader's encoding of "no measurement" (0)
        zero = encode_depth(
            np.zeros((2, 2), np.uint16), encoding,
            kwargs.get('depth_scale', 1.0), kwargs.get('depth_range'))
        assert zero[0, 0, 0] == pytest.approx(value)
    out = DepthMissing(depth_encoding=encoding, **kwargs)(sample())
    assert (out['img'][..., 3:] == np.float32(value)).all()


def test_rgb_missing_is_black():
    out = RGBMissing()(sample())
    assert (out['img'][..., :3] == 0).all()


# ------------------------------------------------------------ holes
@pytest.mark.parametrize('severity,fraction', [(1, 0.05), (2, 0.10), (3, 0.20),
                                               (4, 0.35), (5, 0.50)])
def test_hole_fraction_per_severity(severity, fraction):
    out = DepthHoles(severity=severity)(sample())
    holes = out['img'][..., 3] == 0
    assert abs(holes.mean() - fraction) <= 1 / (H * W)


def test_holes_are_blobs_nested_by_severity_and_prefer_dark_surfaces():
    rgb = np.full((H, W, 3), 128, np.float32)
    rgb[:, :32] = 5  # a black object: a quarter of the image
    masks = [
        DepthHoles(severity=s)(sample(rgb=rgb))['img'][..., 3] == 0
        for s in (1, 2, 3, 4, 5)
    ]
    for low, high in zip(masks, masks[1:]):
        assert not (low & ~high).any()  # higher severity contains lower
    holes = masks[2]  # 20 %: half of it (10 % of the image) on the black
    dark = holes[:, :32].mean()
    grey = holes[:, 32:].mean()
    assert dark > 0.4 and grey < 0.15, (dark, grey)
    # blobs, not salt and pepper: most hole pixels have a hole to the right
    right = holes[:, :-1] & holes[:, 1:]
    assert right.sum() / holes[:, :-1].sum() > 0.8


def test_far_pixels_are_hole_prone():
    depth = np.full((H, W, 3), 2000.0, np.float32)
    depth[:H // 4] = 8000.0  # beyond far_range=6 m
    holes = DepthHoles(severity=2)(sample(depth_mm=depth))['img'][..., 3] == 0
    assert holes[:H // 4].mean() > 2.5 * holes[H // 4:].mean()


# ------------------------------------------------------------ noise
@pytest.mark.parametrize('severity', [1, 3, 5])
@pytest.mark.parametrize('z', [1.0, 2.0, 4.0])
def test_noise_sigma_grows_as_z_squared(severity, z):
    t = DepthNoise(severity=severity)
    a = DepthNoise.LEVELS[severity - 1]['a']
    big = dict(
        img=np.full((256, 256, 6), z * 1000, np.float32), img_path='x.png')
    noisy = t(big)['img'][..., 3] * 1e-3 - z  # metres
    assert noisy.std() == pytest.approx(a * z**2, rel=0.03)
    assert abs(noisy.mean()) < 4 * a * z**2 / 256


def test_noise_in_other_encodings_and_missing_stays_missing():
    z = 3.0
    a = DepthNoise.LEVELS[2]['a']
    # 'scale' to metres: the noise is the same in metres
    img = np.full((256, 256, 6), z, np.float32)
    img[:8, :, 3:] = 0  # missing
    out = DepthNoise(
        depth_encoding='scale',
        depth_scale=1e-3)(dict(img=img, img_path='x.png'))['img'][..., 3]
    assert (out[:8] == 0).all() and (out[8:] > 0).all()
    assert (out[8:] - z).std() == pytest.approx(a * z**2, rel=0.03)
    # 'clip' to (0, 10000) mm as 0..255
    img = np.full((256, 256, 6), z * 1000 * 255 / 10000, np.float32)
    out = DepthNoise(
        depth_encoding='clip',
        depth_range=(0, 10000))(dict(img=img, img_path='x.png'))['img'][..., 3]
    assert (out * 10000 / 255 / 1000 - z).std() == pytest.approx(
        a * z**2, rel=0.03)


def test_depth_unit_gives_metres():
    # depth stored in centimetres: 300 cm = 3 m
    img = np.full((256, 256, 6), 300, np.float32)
    out = DepthNoise(
        severity=3, depth_unit=0.01)(dict(img=img,
                                          img_path='x.png'))['img'][..., 3]
    assert ((out - 300) * 0.01).std() == pytest.approx(0.01 * 9, rel=0.03)


# ------------------------------------------------------------ quantisation
@pytest.mark.parametrize('severity', [1, 3, 5])
def test_quantisation_rounds_disparity(severity):
    step = DepthQuantisation.LEVELS[severity - 1]['step']
    ramp = np.linspace(500, 5000, W, dtype=np.float32)
    depth = np.broadcast_to(ramp[None, :, None], (H, W, 3)).copy()
    depth[0, 0] = 0  # missing stays missing
    out = DepthQuantisation(severity=severity)(
        sample(depth_mm=depth))['img'][..., 3]
    assert out[0, 0] == 0
    z = ramp[1:].astype(np.float64) * 1e-3
    zq = out[0, 1:].astype(np.float64) * 1e-3
    k = 1 / (zq * step)
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)  # on the grid
    assert (np.abs(1 / zq - 1 / z) <= step / 2 + 1e-6).all()
    assert np.all(np.diff(zq) >= 0)  # monotone
    levels = np.unique(np.round(zq, 5))
    expected = np.unique(np.maximum(np.round(1 / (z * step)), 1))
    assert len(levels) == len(expected)


# ------------------------------------------------------------ misregistration
def _best_shift(moved, ref, valid, radius):
    """Integer (dx, dy) that best maps ref onto moved on valid pixels."""
    best, arg = np.inf, None
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = np.roll(ref, (dy, dx), axis=(0, 1))
            m = valid.copy()
            m[:radius + 1] = m[-radius - 1:] = False
            m[:, :radius + 1] = m[:, -radius - 1:] = False
            err = np.abs(shifted - moved)[m].mean()
            if err < best:
                best, arg = err, (dx, dy)
    return arg, best


@pytest.mark.parametrize('severity', [1, 3, 5])
def test_misregistration_shift_in_pixels(severity):
    shift = DepthMisregistration.LEVELS[severity - 1]['shift']
    rng = np.random.default_rng(3)
    depth = rng.uniform(500, 5000, (H, W)).astype(np.float32)
    results = sample(depth_mm=np.repeat(depth[..., None], 3, 2))
    t = DepthMisregistration(severity=severity, rotation=0)
    out = t(results)['img'][..., 3]
    valid = out != 0
    (dx, dy), err = _best_shift(out, depth, valid, shift + 1)
    assert err == 0  # nearest neighbour: values are moved, not blended
    assert math.hypot(dx, dy) == pytest.approx(shift, abs=0.75)
    # uncovered border pixels are missing
    assert (~valid).mean() > 0.5 * shift * (H + W) / (H * W)


def test_misregistration_rotation_and_fixed_direction():
    rng = np.random.default_rng(4)
    depth = rng.uniform(500, 5000, (H + 1, W + 1)).astype(np.float32)
    img = np.empty((H + 1, W + 1, 6), np.float32)
    img[..., :3], img[..., 3:] = 100, depth[..., None]
    out = DepthMisregistration(
        shift=3, rotation=0, direction=90)(dict(img=img.copy(),
                                                img_path='x'))['img'][..., 3]
    np.testing.assert_array_equal(out[3:], depth[:-3])  # 3 px down
    assert (out[:3] == 0).all()
    out = DepthMisregistration(
        shift=0, rotation=5)(dict(img=img.copy(), img_path='x'))['img'][..., 3]
    cy, cx = H // 2, W // 2  # the centre stays, the corners move
    assert out[cy, cx] == depth[cy, cx]
    assert (out[0, 0] == 0) or (out[0, 0] != depth[0, 0])
    changed = (out != depth).mean()
    assert 0.5 < changed < 1.0


# ------------------------------------------------------------ RGB
@pytest.mark.parametrize('severity', [1, 3, 5])
def test_low_light_brightness_and_noise(severity):
    p = RGBLowLight.LEVELS[severity - 1]
    results = dict(
        img=np.full((256, 256, 6), 200, np.float32), img_path='x.png')
    out = RGBLowLight(severity=severity)(results)['img']
    y = 255 * (200 / 255)**p['gamma']
    sigma = math.sqrt(p['read_noise']**2 + p['shot_noise'] * y + 1 / 12)
    assert out[..., :3].mean() == pytest.approx(y, abs=0.3)
    assert out[..., :3].std() == pytest.approx(sigma, rel=0.05)
    assert (out[..., :3] == np.round(out[..., :3])).all()  # 8-bit values
    assert (out[..., 3:] == 200).all()


@pytest.mark.parametrize('severity,length', [(1, 3), (3, 9), (5, 17)])
@pytest.mark.parametrize('angle', [0, 90])
def test_motion_blur_spreads_a_point_along_a_line(severity, length, angle):
    rgb = np.zeros((H, W, 3), np.float32)
    rgb[H // 2, W // 2] = 255
    out = RGBMotionBlur(
        severity=severity, angle=angle)(sample(rgb=rgb))['img'][..., 0]
    ys, xs = np.nonzero(out > 1e-3)
    assert out.sum() == pytest.approx(255, rel=1e-4)
    extent = (xs.max() - xs.min() + 1) if angle == 0 else (ys.max() -
                                                           ys.min() + 1)
    across = (ys.max() - ys.min() + 1) if angle == 0 else (xs.max() -
                                                           xs.min() + 1)
    assert extent == length and across == 1
    np.testing.assert_allclose(out[ys, xs], 255 / length, rtol=1e-5)


# ------------------------------------------------------------ training
def test_modality_drop_rates_and_values():
    t = RandomModalityDrop(
        rgb_prob=0.2,
        depth_prob=0.3,
        seed=0,
        depth_encoding='clip',
        depth_range=(-1000, 9000))
    counts = dict(rgb=0, depth=0, none=0)
    n = 3000
    for i in range(n):
        results = sample(path=f'{i}.png')
        label = results['gt_seg_map'].copy()
        out = t(results)
        img, dropped = out['img'], out['dropped_modality']
        counts[dropped] += 1
        np.testing.assert_array_equal(out['gt_seg_map'], label)
        if dropped == 'rgb':
            assert (img[..., :3] == 0).all() and (img[..., 3:] == 2000).all()
        elif dropped == 'depth':
            assert (img[..., 3:] == np.float32(25.5)).all()
            assert (img[..., :3] >= 40).all()
        else:
            assert (img[..., 3:] == 2000).all() and (img[..., :3] >= 40).all()
    for key, p in (('rgb', 0.2), ('depth', 0.3)):  # 4 binomial sigmas
        assert abs(counts[key] / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_modality_drop_unseeded_follows_the_global_generator():
    t = RandomModalityDrop(rgb_prob=0.5, depth_prob=0.5)
    draws = []
    for _ in range(2):
        np.random.seed(7)
        draws.append([t(sample())['dropped_modality'] for _ in range(20)])
    assert draws[0] == draws[1] and len(set(draws[0])) == 2
    with pytest.raises(ValueError, match='rgb_prob \\+ depth_prob'):
        RandomModalityDrop(rgb_prob=0.6, depth_prob=0.5)


def test_random_depth_degradation():
    clean = sample()
    np.random.seed(0)
    t = RandomDepthDegradation(prob=1.0)
    changed = 0
    for i in range(20):
        out = t(sample(path=f'{i}.png'))['img']
        np.testing.assert_array_equal(out[..., :3], clean['img'][..., :3])
        changed += not np.array_equal(out[..., 3:], clean['img'][..., 3:])
    assert changed >= 15  # quantisation of a constant plane may be exact
    out = RandomDepthDegradation(prob=0.0)(sample())['img']
    np.testing.assert_array_equal(out, clean['img'])


def test_modality_drop_config_pipeline(tmp_path):
    """The quickstart modality-dropout config's training pipeline on the
    quickstart data: packed inputs with black RGB or zero depth appear."""
    cfg = Config.fromfile(
        f'{REPO}/configs/quickstart/'
        'geminifusion_mit-tiny_modality-drop_1xb4-2k_quickstart-96x128.py')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(tmp_path / 'data')
    ds_cfg.generate_cfg = dict(num_train=8, num_val=2, size=(48, 64), seed=1)
    dataset = DATASETS.build(ds_cfg)
    np.random.seed(0)
    seen = set()
    for epoch in range(8):
        for i in range(len(dataset)):
            inputs = dataset[i]['inputs']  # (6, 96, 128) before normalising
            assert inputs.shape == (6, 96, 128)
            pad = inputs.sum(0) == 0
            rgb, depth = inputs[:3][:, ~pad], inputs[3:][:, ~pad]
            if (rgb == 0).all():
                seen.add('rgb')
            elif (depth == 0).all():
                seen.add('depth')
            else:
                seen.add('none')
    assert seen == {'rgb', 'depth', 'none'}

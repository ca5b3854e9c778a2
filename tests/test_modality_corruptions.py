"""Corruptions, modality dropout and the robustness tool on K-modality
samples: modalities addressed by name (``thermal_missing``, depth
corruptions on whichever channels hold depth, ``probs=dict(...)``)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import DATASETS, TRANSFORMS

from geminifusion_mmseg.datasets.transforms import (CORRUPTIONS,
                                                    RandomModalityDrop,
                                                    build_corruption,
                                                    modality_channels,
                                                    modality_missing_value)
from tests.helpers.tiny_configs import REPO, load_tool, tiny_test_run

H, W = 24, 32
RGBDT = ('configs/quickstart/'
         'geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py')
TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'robustness.py')
ENV = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
DEPTH_KINDS = [
    n for n, c in CORRUPTIONS.items()
    if c.MODALITY == 'depth' and n != 'depth_missing'
]


def arrays(seed=0):
    """RGB, raw depth (mm, uint16) and thermal (uint8) arrays."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(40, 220, (H, W, 3)).astype(np.uint8)
    depth = rng.integers(800, 4500, (H, W)).astype(np.uint16)
    thermal = rng.integers(1, 255, (H, W)).astype(np.uint8)
    return rgb, depth, thermal


def load(modalities, encodings=None, path='rgb/000001.png', seed=0):
    """A sample through the real in-memory loaders: K-modality with
    ``modalities`` (depth / thermal / lidar arrays), or RGB-D for None."""
    rgb, depth, thermal = arrays(seed)
    if modalities is None:
        t = TRANSFORMS.build(dict(type='LoadRGBDImageFromNDArray'))
        return t(dict(img=rgb, depth=depth, img_path=path))
    values = dict(depth=depth, thermal=thermal, lidar=depth // 4)
    t = TRANSFORMS.build(
        dict(type='LoadMultiModalImageFromNDArray', encodings=encodings))
    return t(
        dict(
            img=rgb,
            img_path=path,
            modalities=tuple(modalities),
            modality_arrays={m: values[m]
                             for m in modalities[1:]}))


def run(cfg, results):
    return TRANSFORMS.build(cfg)(results)


def test_loaders_name_the_channels():
    rgbd = load(None)
    assert rgbd['modalities'] == ('rgb', 'depth')
    assert rgbd['modality_encodings']['depth']['encoding'] == 'raw'
    k3 = load(('rgb', 'depth', 'thermal'))
    assert k3['modalities'] == ('rgb', 'depth', 'thermal')
    assert modality_channels(k3, 'thermal') == slice(6, 9)
    assert modality_channels(k3, 'depth') == slice(3, 6)
    # 6 channels without names (a sample built by hand) read as RGB-D
    assert modality_channels(dict(img=rgbd['img']), 'depth') == slice(3, 6)
    with pytest.raises(KeyError) as e:
        modality_channels(k3, 'event', 'ModalityMissing')
    assert "'event'" in str(e.value)
    assert "['rgb', 'depth', 'thermal']" in str(e.value)
    with pytest.raises(ValueError, match=r'\(H, W, 9\)'):
        modality_channels(dict(k3, img=k3['img'][..., :6]), 'thermal')


def test_thermal_missing_changes_only_thermal():
    clean = load(('rgb', 'depth', 'thermal'))
    before = clean['img'].copy()
    assert (before[..., 6:9] > 0).all()
    out = run(build_corruption('thermal_missing'), clean)
    assert out['img'].shape == (H, W, 9)
    value = modality_missing_value('thermal')
    assert value == 0.0
    assert (out['img'][..., 6:9] == value).all()
    np.testing.assert_array_equal(out['img'][..., :6], before[..., :6])
    # the missing value follows the loader's encoding of the modality
    clip = load(
        ('rgb', 'depth', 'thermal'),
        encodings=dict(thermal=dict(encoding='clip', range=(-50, 205))))
    out = run(build_corruption('thermal_missing'), clip)
    np.testing.assert_allclose(out['img'][..., 6:9], 50.0, atol=1e-4)
    with pytest.raises(KeyError, match=r"'event'.*\['rgb', 'depth', "):
        run(
            build_corruption('event_missing'), load(
                ('rgb', 'depth', 'thermal')))
    with pytest.raises(KeyError, match='thermal_missing'):
        build_corruption('thermal_blur')


@pytest.mark.parametrize('name', DEPTH_KINDS + ['depth_missing'])
@pytest.mark.parametrize('order', [('rgb', 'depth', 'thermal'),
                                   ('rgb', 'thermal', 'depth')])
def test_depth_corruptions_touch_only_the_depth_channels(name, order):
    """On a K-modality sample a depth corruption changes exactly the depth
    channels, exactly as on the RGB-D sample of the same images."""
    rgbd = run(build_corruption(name, 5), load(None))['img']
    clean = load(order)
    before = clean['img'].copy()
    out = run(build_corruption(name, 5), clean)['img']
    depth = modality_channels(clean, 'depth')
    others = [c for c in range(9) if not depth.start <= c < depth.stop]
    np.testing.assert_array_equal(out[..., others], before[..., others])
    assert not np.array_equal(out[..., depth], before[..., depth])
    np.testing.assert_array_equal(out[..., depth], rgbd[..., 3:6])


def test_depth_corruptions_on_another_depth_like_modality():
    # LiDAR read as raw range: lidar_holes works, draws its own holes
    raw = load(('rgb', 'depth', 'lidar'), encodings=dict(lidar='raw'))
    before = raw['img'].copy()
    out = run(build_corruption('lidar_holes', 4), raw)['img']
    np.testing.assert_array_equal(out[..., :6], before[..., :6])
    holes = (out[..., 6:9] == 0).all(axis=2)
    assert holes.mean() == pytest.approx(0.35, abs=1 / (H * W))
    depth_holes = run(
        build_corruption('depth_holes', 4),
        load(('rgb', 'depth', 'lidar'), encodings=dict(lidar='raw')))['img']
    assert not np.array_equal(holes, (depth_holes[..., 3:6] == 0).all(2))
    # read as stored ('image', the DeLiVER loader): not depth-like
    image = load(('rgb', 'depth', 'lidar'))
    with pytest.raises(ValueError, match="'lidar' with the encoding 'image'"):
        run(build_corruption('lidar_noise'), image)
    with pytest.raises(ValueError, match="cannot act on 'rgb'"):
        TRANSFORMS.build(build_corruption('rgb_holes'))
    out = run(build_corruption('lidar_missing'), image)['img']
    assert (out[..., 6:9] == 0).all()


def test_random_modality_drop_by_name():
    t = RandomModalityDrop(probs=dict(depth=0.2, thermal=0.3), seed=0)
    counts = dict(depth=0, thermal=0, none=0)
    n = 400
    for i in range(n):
        results = load(('rgb', 'depth', 'thermal'), path=f'{i}.png', seed=i)
        before = results['img'].copy()
        out = t(results)
        dropped = out['dropped_modality']
        counts[dropped] += 1
        img = out['img']
        np.testing.assert_array_equal(img[..., :3], before[..., :3])
        for name, ch in (('depth', slice(3, 6)), ('thermal', slice(6, 9))):
            if dropped == name:
                assert (img[..., ch] == 0).all()
            else:
                np.testing.assert_array_equal(img[..., ch], before[..., ch])
    assert abs(counts['depth'] / n - 0.2) < 0.06
    assert abs(counts['thermal'] / n - 0.3) < 0.07
    # the RGB-D arguments are probs=dict(rgb=..., depth=...): same draws
    old = RandomModalityDrop(rgb_prob=0.3, depth_prob=0.4, seed=3)
    new = RandomModalityDrop(probs=dict(rgb=0.3, depth=0.4), seed=3)
    for i in range(50):
        a, b = old(load(None,
                        path=f'{i}.png')), new(load(None, path=f'{i}.png'))
        assert a['dropped_modality'] == b['dropped_modality']
        np.testing.assert_array_equal(a['img'], b['img'])
    with pytest.raises(KeyError, match=r"'event'.*'thermal'"):
        RandomModalityDrop(probs=dict(event=0.5))(
            load(('rgb', 'depth', 'thermal')))
    with pytest.raises(ValueError, match='sum of probs'):
        RandomModalityDrop(probs=dict(depth=0.6, thermal=0.5))
    with pytest.raises(ValueError, match='either probs or'):
        RandomModalityDrop(rgb_prob=0.1, probs=dict(depth=0.1))


def test_random_modality_drop_writes_each_modality_encodings_missing_value():
    """A dropped modality gets its ModalityEncoding's missing value: the
    loader's encoding of it (here a 'clip' whose stored 0 is not 0), or
    for 'depth' the depth_* arguments."""
    from geminifusion_mmseg.datasets.transforms import ModalityEncoding
    encodings = dict(
        thermal=dict(encoding='clip', range=(-100, 100)),
        lidar=dict(encoding='scale', scale=2.0))
    t = RandomModalityDrop(
        probs=dict(rgb=0.25, depth=0.25, thermal=0.25, lidar=0.25),
        depth_encoding='clip',
        depth_range=(-1000, 3000))
    expected = dict(
        rgb=ModalityEncoding('rgb'),
        depth=ModalityEncoding('clip', range=(-1000, 3000)),
        thermal=ModalityEncoding('clip', range=(-100, 100)),
        lidar=ModalityEncoding('scale', 2.0))
    assert expected['thermal'].missing_value() == 127.5
    assert expected['depth'].missing_value() == 63.75
    seen = set()
    for i in range(40):
        results = load(('rgb', 'depth', 'thermal', 'lidar'), encodings,
                       f'{i}.png', i)
        for name, enc in expected.items():
            assert t.modality_encoding(results, name) == enc
        out = t(results)
        name = out['dropped_modality']
        seen.add(name)
        ch = modality_channels(out, name)
        assert (out['img'][..., ch] == expected[name].missing_value()).all()
    assert seen == set(expected)


@pytest.fixture(scope='module')
def k3(tmp_path_factory):
    """A tiny K = 3 quickstart config (rgb, depth, thermal; 4 test images
    of 48x64) and a checkpoint of its randomly initialised model."""
    tmp = tmp_path_factory.mktemp('robustness_k3')
    return tiny_test_run(tmp, RGBDT, 'tiny_rgbdt')


def load_robustness_tool():
    return load_tool(TOOL)


def test_thermal_missing_in_the_tool_pipeline(k3):
    tool = load_robustness_tool()
    cfg = Config.fromfile(k3['config'])
    inputs = {}
    for name in ('clean', 'thermal_missing'):
        pipeline = tool.corrupted_pipeline(
            cfg.test_dataloader.dataset.pipeline, name, None)
        dataset = DATASETS.build(
            dict(cfg.test_dataloader.dataset, pipeline=pipeline))
        inputs[name] = dataset[0]['inputs']
    clean, missing = inputs['clean'], inputs['thermal_missing']
    assert (missing[6:9] == 0).all() and (clean[6:9] > 0).any()
    torch.testing.assert_close(missing[:6], clean[:6])
    pipeline = cfg.test_dataloader.dataset.pipeline
    with pytest.raises(ValueError, match="no modality 'event'"):
        tool.corrupted_pipeline(
            pipeline,
            'event_missing',
            None,
            modalities=cfg.test_dataloader.dataset.modalities)
    # thermal is read with the 'thermal' encoding: not depth-like
    with pytest.raises(ValueError, match="'thermal' with the encoding"):
        tool.corrupted_pipeline(pipeline, 'thermal_holes', 1)


def test_tool_on_a_three_modality_config(k3):
    out_dir = k3['tmp'] / 'out'
    run = subprocess.run([
        sys.executable, TOOL, k3['config'], k3['ckpt'], '--corruptions',
        'thermal_missing', 'depth_holes', '--severities', '1', '--out-dir',
        str(out_dir), '--no-plot'
    ],
                         env=ENV,
                         cwd=k3['tmp'],
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(out_dir / 'robustness.json') as f:
        summary = json.load(f)
    conditions = [(r['corruption'], r['severity']) for r in summary['results']]
    assert conditions == [('clean', None), ('thermal_missing', None),
                          ('depth_holes', 1)]
    assert summary['num_samples'] == 4
    for r in summary['results']:
        # the fused prediction and the model's two branches (rgb, fused)
        assert set(r['drop']) == {'mIoU', 'rgb.mIoU', 'fused.mIoU'}
        for key in r['drop']:
            assert 0 <= r['metrics'][key] <= 100
    assert 'fused mIoU' in run.stdout and 'fused branch mIoU' in run.stdout
    assert 'rgb mIoU' in run.stdout and 'thermal_missing' in run.stdout
    bad = subprocess.run([
        sys.executable, TOOL, k3['config'], k3['ckpt'], '--corruptions',
        'event_missing'
    ],
                         env=ENV,
                         cwd=k3['tmp'],
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert bad.returncode != 0
    assert "no modality 'event'" in bad.stderr
    assert "['rgb', 'depth', 'thermal']" in bad.stderr


def test_rgb_corruptions_act_on_rgb_only():
    k3 = load(('rgb', 'depth', 'thermal'))
    before = k3['img'].copy()
    out = run(dict(type='RGBMissing', modality='rgb'), k3)['img']
    assert (out[..., :3] == 0).all()
    np.testing.assert_array_equal(out[..., 3:], before[..., 3:])
    with pytest.raises(ValueError, match="'rgb'.*only.*'thermal'"):
        TRANSFORMS.build(dict(type='RGBLowLight', modality='thermal'))

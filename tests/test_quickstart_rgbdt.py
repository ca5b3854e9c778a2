"""The three-sensor quickstart: generator, dataset, and a short learning
run of the K = 3 config through tools/train.py."""
import filecmp
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import TRANSFORMS

from geminifusion_mmseg.datasets import (QuickstartRGBDTDataset,
                                         generate_quickstart_rgbdt_dataset)
# yapf: disable
from geminifusion_mmseg.datasets.quickstart_rgbdt import (BOX_DEPTH_MM,
                                                          COLD_BOX, FAR_BOX,
                                                          NEAR_BOX,
                                                          RGBDT_CLASSES, WALL,
                                                          WARM_BOX,
                                                          render_sample_rgbdt)
# yapf: enable
from tests.helpers.tiny_configs import REPO, write_tiny_config
from tests.helpers.training_runs import ENV, logged, train_cmd

RGBDT = ('configs/quickstart/'
         'geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py')


def _ks_statistic(a, b):
    """Two-sample Kolmogorov-Smirnov statistic max |F_a - F_b|."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side='right') / len(a)
    fb = np.searchsorted(b, grid, side='right') / len(b)
    return float(np.abs(fa - fb).max())


def _ks_same(a, b, c_alpha=1.95):
    """KS test at level 0.001 accepts 'same distribution'."""
    n, m = len(a), len(b)
    return _ks_statistic(a, b) < c_alpha * np.sqrt((n + m) / (n * m))


@pytest.fixture(scope='module')
def box_stats():
    """Per (image, class) means of each sensor, for the four box classes
    and the wall, over 600 rendered scenes."""
    rng = np.random.default_rng(123)
    stats = {
        c: dict(rgb=[], depth=[], thermal=[], room=[])
        for c in (NEAR_BOX, FAR_BOX, WARM_BOX, COLD_BOX, WALL)
    }
    for _ in range(600):
        rgb, depth, thermal, label = render_sample_rgbdt(rng, (48, 64))
        room = float(np.median(thermal[label == WALL]))
        for c, s in stats.items():
            mask = label == c
            if mask.sum() < 20:
                continue
            s['rgb'].append(rgb[mask].mean(0))
            s['depth'].append(float(np.median(depth[mask])))
            s['thermal'].append(float(np.median(thermal[mask])))
            s['room'].append(room)
    return {
        c: {
            k: np.asarray(v)
            for k, v in s.items()
        }
        for c, s in stats.items()
    }


def test_warm_and_cold_boxes_differ_only_in_thermal(box_stats):
    warm, cold = box_stats[WARM_BOX], box_stats[COLD_BOX]
    assert len(warm['rgb']) > 100 and len(cold['rgb']) > 100
    # the same colour distribution (per channel), as the other boxes
    for ch in range(3):
        assert _ks_same(warm['rgb'][:, ch], cold['rgb'][:, ch]), ch
        assert _ks_same(warm['rgb'][:, ch], box_stats[NEAR_BOX]['rgb'][:,
                                                                       ch]), ch
    # the same distance (one value, sensor noise only)
    assert _ks_same(warm['depth'], cold['depth'])
    for s in (warm, cold):
        assert np.abs(s['depth'] - BOX_DEPTH_MM[WARM_BOX]).max() < 300
    # ... and apart from near / far boxes in depth
    assert box_stats[NEAR_BOX]['depth'].max() < warm['depth'].min()
    assert warm['depth'].max() < box_stats[FAR_BOX]['depth'].min()
    # thermal alone separates them: warm above the room, cold below
    assert (warm['thermal'] - warm['room']).min() > 30
    assert (cold['thermal'] - cold['room']).max() < -30


def test_thermal_alone_cannot_tell_the_other_classes(box_stats):
    near, far = box_stats[NEAR_BOX], box_stats[FAR_BOX]
    # near and far boxes (and the wall) are at room temperature
    assert _ks_same(near['thermal'] - near['room'],
                    far['thermal'] - far['room'])
    for s in (near, far):
        assert np.abs(s['thermal'] - s['room']).max() < 15


def test_generation_is_deterministic_and_atomic(tmp_path):
    cfg = dict(num_train=3, num_val=2, size=(48, 64), seed=5)
    a = generate_quickstart_rgbdt_dataset(str(tmp_path / 'a'), **cfg)
    # a folder without the completion marker is not ours: refused, kept
    os.makedirs(tmp_path / 'b' / 'rgb')
    open(tmp_path / 'b' / 'rgb' / 'junk.png', 'w').close()
    with pytest.raises(FileExistsError, match=f'{tmp_path / "b"} holds'):
        generate_quickstart_rgbdt_dataset(str(tmp_path / 'b'), **cfg)
    assert os.listdir(tmp_path / 'b' / 'rgb') == ['junk.png']
    # an empty folder is filled
    os.makedirs(tmp_path / 'c')
    b = generate_quickstart_rgbdt_dataset(str(tmp_path / 'c'), **cfg)
    for sub in ('rgb', 'depth', 'thermal', 'masks'):
        names = sorted(os.listdir(osp.join(a, sub)))
        assert names == [f'{i:06d}.png' for i in range(5)]
        assert sorted(os.listdir(osp.join(b, sub))) == names
        _, mismatch, errors = filecmp.cmpfiles(
            osp.join(a, sub), osp.join(b, sub), names, shallow=False)
        assert not mismatch and not errors, (sub, mismatch, errors)
    with open(osp.join(a, 'val.txt')) as f:
        assert f.read().split() == ['000003', '000004']
    depth = cv2.imread(
        osp.join(a, 'depth', '000000.png'), cv2.IMREAD_UNCHANGED)
    thermal = cv2.imread(
        osp.join(a, 'thermal', '000000.png'), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (48, 64)
    assert thermal.dtype == np.uint8 and thermal.shape == (48, 64)
    # a complete dataset is kept as it is (not regenerated with a new seed)
    before = os.stat(osp.join(a, 'rgb', '000000.png')).st_mtime_ns
    generate_quickstart_rgbdt_dataset(a, num_train=3, num_val=2, seed=6)
    assert os.stat(osp.join(a, 'rgb', '000000.png')).st_mtime_ns == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]


def test_dataset_reads_the_chosen_sensors(tmp_path):
    init_default_scope('mmseg')
    root = str(tmp_path / 'rgbdt')
    gen = dict(num_train=2, num_val=1, size=(48, 64), seed=0)
    load = TRANSFORMS.build(
        dict(type='LoadMultiModalImageFromFile', encodings=dict(depth='raw')))
    full = QuickstartRGBDTDataset(
        data_root=root, generate_cfg=gen, ann_file='val.txt')
    rgbd = QuickstartRGBDTDataset(
        data_root=root, ann_file='val.txt', modalities=['rgb', 'depth'])
    assert full.metainfo['classes'] == RGBDT_CLASSES
    assert len(full) == len(rgbd) == 1
    img9 = load(full.get_data_info(0))['img']
    img6 = load(rgbd.get_data_info(0))['img']
    assert img9.shape == (48, 64, 9) and img6.shape == (48, 64, 6)
    np.testing.assert_array_equal(img9[..., :6], img6)
    thermal = cv2.imread(
        osp.join(root, 'thermal', '000002.png'), cv2.IMREAD_UNCHANGED)
    for ch in (6, 7, 8):
        np.testing.assert_array_equal(img9[..., ch], thermal)
    depth = cv2.imread(
        osp.join(root, 'depth', '000002.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(img9[..., 3], depth)  # raw millimetres
    with pytest.raises(ValueError, match='unknown modality'):
        QuickstartRGBDTDataset(data_root=root, modalities=['rgb', 'event'])
    os.remove(osp.join(root, 'thermal', '000002.png'))
    with pytest.raises(FileNotFoundError, match='thermal file'):
        QuickstartRGBDTDataset(data_root=root, ann_file='val.txt')


def test_three_sensor_quickstart_learns(tmp_path):
    """80 iterations of the K = 3 config (small model, 48x64 data)."""
    cfg = write_tiny_config(
        str(tmp_path / 'rgbdt.py'),
        RGBDT,
        str(tmp_path / 'data'),
        extra="""
crop_size = (48, 64)
generate_cfg = dict(num_train=24, num_val=6, size=(48, 64), seed=1)
train_pipeline = [
    dict(type='LoadMultiModalImageFromFile', encodings=dict(depth='raw')),
    dict(type='LoadMultiModalAnnotations'),
    dict(type='RandomResize', scale=(256, 48), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RGBDPad', size=(64, 48), pad_val=dict(img=0, seg=255)),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(
    data_root=data_root, generate_cfg=generate_cfg, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, generate_cfg=generate_cfg))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=5,
         end=80)
]
train_cfg = dict(max_iters=80, val_interval=80)
log_processor = dict(window_size=1)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=80, max_keep_ckpts=1))
""")
    run = subprocess.run(
        train_cmd(cfg, tmp_path / 'wd'),
        env=ENV,
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    log = logged(tmp_path / 'wd')
    losses = [log[i]['loss'] for i in range(1, 81)]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    for branch in ('rgb', 'fused', 'ens'):
        assert f'{branch}.loss_ce' in log[80]
    val = log['val'][-1]
    # 8 classes: "wall" everywhere gives about 7 mIoU
    assert val['mIoU'] > 15, val
    assert 'rgb.mIoU' in val and 'fused.mIoU' in val
    # tools/test.py: branch mIoU, one panel tile per sensor
    best = tmp_path / 'wd' / 'best_mIoU_iter_80.pth'
    run = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), cfg,
        str(best), '--work-dir',
        str(tmp_path / 'test'), '--show-dir', 'panels'
    ],
                         env=ENV,
                         cwd=tmp_path,
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert 'warm box' in out and 'fused.mIoU' in out
    panels = sorted(os.listdir(tmp_path / 'test' / 'panels'))
    assert len(panels) == 6
    panel = cv2.imread(str(tmp_path / 'test' / 'panels' / panels[0]))
    # rgb | depth | thermal | ground truth | prediction
    assert panel.shape[1] == 5 * 64
    # the data the run generated have three sensors
    assert sorted(
        n for n in os.listdir(tmp_path / 'data') if not n.startswith('.')) == [
            'depth', 'masks', 'rgb', 'thermal', 'train.txt', 'val.txt'
        ]

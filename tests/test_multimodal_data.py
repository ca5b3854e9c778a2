"""DeLiVER / MFNet data: the K-modality loader and the datasets against a
literal reimplementation of the reference readers and validation transform
(geminifusion_mmseg/testing/literal_deliver_data.py), on synthetic data in the
real layouts.
"""
import os
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose

from geminifusion_mmseg.datasets import (DELIVER_CASES, DELIVER_CLASSES,
                                         DELIVER_PALETTE, MFNET_CLASSES,
                                         MFNET_PALETTE, DeLiVERDataset,
                                         MFNetDataset, NYUDv2Dataset,
                                         check_modalities_match,
                                         modality_mean_std)
from geminifusion_mmseg.datasets.transforms import (
    LoadMultiModalAnnotations, LoadMultiModalImageFromFile,
    LoadRGBDImageFromFile, ResizeShortSideToMultiple)
from geminifusion_mmseg.testing import literal_deliver_data as ref
from tests.helpers.synthetic_multimodal import make_deliver, make_mfnet
from tests.helpers.synthetic_rgbd import make_nyudv2_tokenfusion

ALL4 = ('rgb', 'depth', 'event', 'lidar')
# our modality names -> the reference's sample keys
REF_KEY = dict(
    rgb='img', depth='depth', event='event', lidar='lidar', thermal='thermal')
DELIVER_ENCODINGS = dict(depth='image', event='image', lidar='image')


@pytest.fixture(scope='module')
def deliver_root(tmp_path_factory):
    return make_deliver(str(tmp_path_factory.mktemp('data') / 'DELIVER'))


@pytest.fixture(scope='module')
def mfnet_root(tmp_path_factory):
    return make_mfnet(str(tmp_path_factory.mktemp('data') / 'MFNet'))


def _val_pipeline(short_side,
                  modalities,
                  encodings=DELIVER_ENCODINGS,
                  resize_to_rgb=('event', )):
    return Compose([
        dict(
            type='LoadMultiModalImageFromFile',
            encodings={
                k: v
                for k, v in encodings.items() if k in modalities
            },
            resize_to_rgb=resize_to_rgb),
        dict(type='LoadMultiModalAnnotations'),
        dict(
            type='ResizeShortSideToMultiple',
            short_side=short_side,
            size_divisor=32,
            round_result=True),
    ])


def _normalise(img, modalities):
    mean, std = modality_mean_std(modalities)
    return (img - np.float32(mean)) / np.float32(std)


def _compare(out, raw, inputs, label, modalities):
    img = out['img']
    for i, m in enumerate(modalities):
        expected = raw[REF_KEY[m]].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(
            img[..., 3 * i:3 * i + 3], expected, err_msg=m)
        np.testing.assert_allclose(
            _normalise(img, modalities)[..., 3 * i:3 * i + 3],
            inputs[i].permute(1, 2, 0).numpy(),
            rtol=0,
            atol=2e-6,
            err_msg=m)
    np.testing.assert_array_equal(out['gt_seg_map'], label.numpy())


@pytest.mark.parametrize('split,case', [('val', None), ('test', None),
                                        ('val', 'night'),
                                        ('val', 'eventlowres'),
                                        ('test', 'overexposure'),
                                        ('val', 'lidarjitter')])
@pytest.mark.parametrize('modalities',
                         [ALL4, ('rgb', 'lidar', 'depth'), ('rgb', 'event')])
@pytest.mark.parametrize('short_side', [48, 32])
def test_deliver_matches_reference(deliver_root, split, case, modalities,
                                   short_side):
    ds = DeLiVERDataset(
        data_root=deliver_root,
        split=split,
        modalities=modalities,
        case=case,
        pipeline=_val_pipeline(short_side, modalities))
    files = ref.deliver_files(deliver_root, split, case)
    assert [ds.get_data_info(i)['img_path']
            for i in range(len(ds))] == [osp.normpath(f) for f in files]
    ref_modals = [REF_KEY[m] for m in modalities]
    for i, f in enumerate(files):
        out = ds[i]
        assert out['modalities'] == modalities
        assert out['img'].shape[2] == 3 * len(modalities)
        raw, inputs, label = ref.val_item(
            ref.deliver_sample(f, ref_modals), ref_modals,
            (short_side, short_side))
        _compare(out, raw, inputs, label, modalities)


def test_deliver_layout_cases_and_metainfo(deliver_root):
    ds = DeLiVERDataset(data_root=deliver_root, split='val')
    assert len(ds) == 4
    assert ds.metainfo['classes'] == DELIVER_CLASSES
    assert len(DELIVER_CLASSES) == 25 and len(DELIVER_PALETTE) == 25
    info = ds.get_data_info(0)
    assert list(info['modality_paths']) == list(ALL4)
    assert info['modality_paths']['depth'].endswith('_depth_front.png')
    assert f'{os.sep}hha{os.sep}' in info['modality_paths']['depth']
    assert info['seg_map_path'].endswith('_semantic_front.png')
    # a list of cases is the union
    both = DeLiVERDataset(
        data_root=deliver_root, split='val', case=['night', 'fog'])
    assert len(both) == 2
    # every case name is accepted
    for case in DELIVER_CASES:
        try:
            DeLiVERDataset(data_root=deliver_root, split='val', case=case)
        except ValueError as e:  # no samples of that case here
            assert 'no val images of the case' in str(e)


def test_deliver_case_rain_on_train(deliver_root):
    # The reference matches the case anywhere in the path, so 'rain' keeps
    # every file of 'train/'; here the split folder is not searched.
    assert len(ref.deliver_files(deliver_root, 'train', 'rain')) == 4
    ds = DeLiVERDataset(data_root=deliver_root, split='train', case='rain')
    assert len(ds) == 1
    assert f'{os.sep}rain{os.sep}' in ds.get_data_info(0)['img_path']
    # on val/test the two agree
    assert len(
        DeLiVERDataset(data_root=deliver_root, split='val',
                       case='rain')) == len(
                           ref.deliver_files(deliver_root, 'val', 'rain'))


def test_deliver_errors(deliver_root, tmp_path):
    with pytest.raises(
            ValueError, match=r"unknown case 'snow'.*'cloud'.*"
            r"'eventlowres'"):
        DeLiVERDataset(data_root=deliver_root, split='val', case='snow')
    with pytest.raises(ValueError, match=r"unknown case 'Night'"):
        DeLiVERDataset(
            data_root=deliver_root, split='val', case=['fog', 'Night'])
    with pytest.raises(ValueError, match='split must be one of'):
        DeLiVERDataset(data_root=deliver_root, split='training')
    with pytest.raises(ValueError, match="unknown modality 'thermal'"):
        DeLiVERDataset(
            data_root=deliver_root, split='val', modalities=('rgb', 'thermal'))
    with pytest.raises(ValueError, match="first modality must be 'rgb'"):
        DeLiVERDataset(
            data_root=deliver_root, split='val', modalities=('depth', 'rgb'))
    with pytest.raises(FileNotFoundError, match='data_root'):
        DeLiVERDataset(data_root=str(tmp_path / 'nope'), split='val')
    # a missing modality file names the modality, the sample and the path
    root = make_deliver(str(tmp_path / 'D'), splits=('val', ))
    victim = DeLiVERDataset(
        data_root=root, split='val').get_data_info(1)['modality_paths']
    os.remove(victim['event'])
    with pytest.raises(FileNotFoundError) as e:
        DeLiVERDataset(data_root=root, split='val')
    msg = str(e.value)
    assert 'event file' in msg and victim['event'] in msg
    assert f"sample {victim['rgb']}" in msg
    # without the event modality the dataset does not need the file
    assert len(
        DeLiVERDataset(
            data_root=root, split='val',
            modalities=('rgb', 'depth', 'lidar'))) == 4
    # ... and at load time (check_files=False) the loader names it too
    ds = DeLiVERDataset(
        data_root=root,
        split='val',
        check_files=False,
        pipeline=[
            dict(
                type='LoadMultiModalImageFromFile',
                encodings=dict(depth='image'),
                resize_to_rgb=('event', ))
        ])
    with pytest.raises(
            FileNotFoundError, match=r"Modality 'event'.*does not exist") as e:
        ds[1]
    assert victim['event'] in str(e.value)
    assert f"sample {victim['rgb']}" in str(e.value)


def test_loader_size_and_modality_errors(deliver_root):
    ds = DeLiVERDataset(
        data_root=deliver_root, split='val', case='eventlowres')
    info = ds.get_data_info(0)
    # an event map of another size without resize_to_rgb
    with pytest.raises(ValueError, match=r'event image size .* differs'):
        LoadMultiModalImageFromFile(encodings=DELIVER_ENCODINGS)(dict(info))
    # loader modalities that disagree with the dataset's
    with pytest.raises(
            ValueError,
            match=r"modalities=\['rgb', 'depth'\] "
            r'but the dataset gives'):
        LoadMultiModalImageFromFile(modalities=('rgb', 'depth'))(dict(info))
    # 'raw' refuses a 3-channel encoding with different channels
    ds = DeLiVERDataset(data_root=deliver_root, split='val', case='night')
    with pytest.raises(ValueError, match="use depth_encoding='hha'"):
        LoadMultiModalImageFromFile(
            encodings=dict(depth='raw'), resize_to_rgb=('event', ))(
                dict(ds.get_data_info(0)))
    with pytest.raises(ValueError, match='unknown encoding'):
        LoadMultiModalImageFromFile(encodings=dict(depth='png'))
    with pytest.raises(ValueError, match="needs range"):
        LoadMultiModalImageFromFile(encodings=dict(depth='clip'))
    with pytest.raises(ValueError, match="encoding 'rgb' is the one"):
        LoadMultiModalImageFromFile(encodings=dict(event='rgb'))


@pytest.mark.parametrize('split', ['train', 'val'])
@pytest.mark.parametrize('modalities', [('rgb', 'thermal'), ('rgb', )])
def test_mfnet_matches_reference(mfnet_root, split, modalities):
    short_side = 40
    ds = MFNetDataset(
        data_root=mfnet_root,
        split=split,
        modalities=modalities,
        pipeline=_val_pipeline(short_side, modalities, {}, ()))
    names = [n for n in ref.mfnet_names(mfnet_root, split) if n]
    assert len(ds) == len(names)
    ref_modals = [REF_KEY[m] for m in modalities]
    for i, name in enumerate(names):
        assert ds.get_data_info(i)['img_path'] == osp.join(
            mfnet_root, 'rgb', name + '.png')
        out = ds[i]
        raw, inputs, label = ref.val_item(
            ref.mfnet_sample(mfnet_root, name, ref_modals), ref_modals,
            (short_side, short_side))
        _compare(out, raw, inputs, label, modalities)
    assert ds.metainfo['classes'] == MFNET_CLASSES
    assert ds.metainfo['classes'][0] == 'unlabeled'
    assert len(MFNET_PALETTE) == 9


def test_mfnet_errors(tmp_path):
    root = make_mfnet(str(tmp_path / 'M'))
    name = ref.mfnet_names(root, 'val')[1]
    os.remove(osp.join(root, 'ther', name + '.png'))
    with pytest.raises(FileNotFoundError) as e:
        MFNetDataset(data_root=root, split='val')
    msg = str(e.value)
    assert 'line 2 of' in msg and 'test.txt' in msg
    assert 'thermal file' in msg and osp.join('ther', name + '.png') in msg
    assert len(
        MFNetDataset(data_root=root, split='val', modalities=('rgb', ))) == 3
    with pytest.raises(ValueError, match='split must be one of'):
        MFNetDataset(data_root=root, split='test')
    with pytest.raises(FileNotFoundError, match='list file'):
        MFNetDataset(data_root=root, ann_file='nope.txt')


def test_check_modalities_match():
    check_modalities_match(12, ALL4, 'backbone in_channels')
    with pytest.raises(ValueError) as e:
        check_modalities_match(6, ALL4, 'backbone in_channels')
    msg = str(e.value)
    assert 'backbone in_channels has 6 channels' in msg
    assert 'need 12' in msg and "'lidar'" in msg
    mean, std = modality_mean_std(('rgb', 'thermal'))
    assert mean == [123.675, 116.28, 103.53, 0., 0., 0.]
    assert std == [58.395, 57.12, 57.375, 255., 255., 255.]
    with pytest.raises(ValueError, match='data_preprocessor mean has 9'):
        check_modalities_match(9, ('rgb', 'depth'), 'data_preprocessor mean')


@pytest.mark.parametrize('size_mismatch', ['stretch', 'crop'])
def test_multimodal_loader_equals_rgbd_loader(tmp_path, size_mismatch):
    """On an RGB-D sample the K-modality loader is the RGB-D loader (the
    released NYUDv2 layout: depth larger than RGB, either policy)."""
    root = make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=3, num_test=1)
    ds = NYUDv2Dataset(
        data_root=root, ann_file='train.txt', size_mismatch=size_mismatch)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        a = LoadRGBDImageFromFile()(dict(info))
        b = LoadMultiModalImageFromFile()(dict(info))
        assert b['modalities'] == ('rgb', 'depth')
        assert a['img'].dtype == b['img'].dtype == np.float32
        np.testing.assert_array_equal(a['img'], b['img'])
        assert ('unaligned_modalities' in b) == (
            size_mismatch == 'stretch' and i > 0)
        if 'unaligned_modalities' in b:
            np.testing.assert_array_equal(
                a['unaligned_modalities']['depth'].data,
                b['unaligned_modalities']['depth'].data)


def test_multichannel_label_and_channel_option(deliver_root):
    ds = DeLiVERDataset(data_root=deliver_root, split='val', case='rain')
    info = ds.get_data_info(0)  # its label file is a 3-channel image
    seg_r = LoadMultiModalAnnotations()(dict(info, ori_shape=None))
    seg_b = LoadMultiModalAnnotations(channel=2)(dict(info, ori_shape=None))
    # blue is 200 everywhere: 200 - 1 = 199 >= 25 -> 255
    assert (seg_b['gt_seg_map'] == 255).all()
    assert seg_r['gt_seg_map'].max() < 25 or \
        (seg_r['gt_seg_map'] == 255).any()
    assert not (seg_r['gt_seg_map'] == 255).all()


def test_resize_round_result_matches_torch_uint8():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 6)).astype(np.float32)
    t = ResizeShortSideToMultiple(short_side=48, round_result=True)
    out = t(dict(img=img.copy(), seg_fields=[]))['img']
    x = torch.from_numpy(img.astype(np.uint8)).permute(2, 0, 1)
    sample = ref.val_resize(dict(img=x), (48, 48))
    np.testing.assert_array_equal(out, sample['img'].permute(1, 2, 0).numpy())
    plain = ResizeShortSideToMultiple(short_side=48)(dict(
        img=img.copy(), seg_fields=[]))['img']
    assert not np.array_equal(plain, out)
    assert 'round_result=True' in repr(t)


# ----------------------------------------------------------------------
# base dataset configs
# ----------------------------------------------------------------------
CFG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', '_base_',
    'datasets')


@pytest.mark.parametrize('name,modalities', [
    ('deliver_rgbdel', ALL4),
    ('deliver_rgbd', ('rgb', 'depth')),
    ('deliver_rgbe', ('rgb', 'event')),
    ('deliver_rgbl', ('rgb', 'lidar')),
    ('mfnet_rgbt', ('rgb', 'thermal')),
])
def test_base_dataset_configs(name, modalities, deliver_root, mfnet_root):
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(osp.join(CFG_DIR, name + '.py'))
    assert tuple(cfg.modalities) == modalities
    mean, std = modality_mean_std(modalities)
    assert list(cfg.norm_mean) == mean and list(cfg.norm_std) == std
    check_modalities_match(len(cfg.norm_mean), cfg.modalities, name)
    root = mfnet_root if name.startswith('mfnet') else deliver_root
    for phase in ('train', 'val', 'test'):
        ds_cfg = cfg[f'{phase}_dataloader'].dataset
        assert tuple(ds_cfg.modalities) == modalities
        ds_cfg.data_root = root
        ds = DATASETS.build(ds_cfg)
        out = ds[0]
        inputs = out['inputs']
        assert inputs.shape[0] == 3 * len(modalities)
        if phase == 'train':
            crop = tuple(cfg.crop_size)
            assert tuple(inputs.shape[1:]) == crop
            assert out['data_samples'].gt_sem_seg.data.shape[1:] == crop
        else:
            assert inputs.shape[1] % 32 == 0 and inputs.shape[2] % 32 == 0
    jitter = [t for t in cfg.train_pipeline if t.type == 'RGBColorJitter']
    assert tuple(jitter[0].clip_range) == (0., 255.)  # uint8: no blackout
    assert jitter[0].uint8
    blur = [t for t in cfg.train_pipeline if t.type == 'RGBGaussianBlur']
    assert blur[0].uint8


# ----------------------------------------------------------------------
# visualisation: one column per modality
# ----------------------------------------------------------------------
def test_multimodal_panel_equals_rgbd_panel_for_rgbd():
    from geminifusion_mmseg.visualization import (make_multimodal_panel,
                                                  make_rgbd_panel)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 6)).astype(np.float32)
    img[..., 3:] = rng.integers(0, 5000, (20, 30, 1))
    seg = rng.integers(0, 3, (20, 30)).astype(np.uint8)
    palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    a = make_rgbd_panel(img[..., :3], img[..., 3:], [('label', seg)], palette)
    b = make_multimodal_panel(img, ('rgb', 'depth'), [('label', seg)], palette)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match='need 12 channels'):
        make_multimodal_panel(img, ALL4)


def test_browse_dataset_tool_deliver(deliver_root, tmp_path, monkeypatch):
    import runpy
    import sys

    import cv2

    from geminifusion_mmseg.visualization.rgbd_panel import TITLE_HEIGHT
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = tmp_path / 'browse_cfg.py'
    cfg.write_text(
        f"_base_ = [{osp.join(CFG_DIR, 'deliver_rgbdel.py')!r}]\n"
        "custom_imports = dict(imports=['geminifusion_mmseg'], "
        'allow_failed_imports=False)\n'
        "default_scope = 'mmseg'\n"
        f'val_dataloader = dict(dataset=dict(data_root={deliver_root!r}, '
        "case='night'))\n")
    out = tmp_path / 'out'
    monkeypatch.setattr(sys, 'argv', [
        'browse_dataset.py',
        str(cfg), '--output-dir',
        str(out), '--num', '1', '--phase', 'val'
    ])
    runpy.run_path(
        osp.join(repo, 'tools', 'misc', 'browse_dataset.py'),
        run_name='__main__')
    files = sorted(os.listdir(out))
    assert len(files) == 1
    canvas = cv2.imread(str(out / files[0]))
    # the 37x53 sample at short side 1024 -> 1024x1472 (multiples of 32):
    # rgb | depth | event | lidar | label
    assert canvas.shape == (1024 + TITLE_HEIGHT, 5 * 1472, 3)


def test_ndarray_loader_and_pillow_backend(deliver_root):
    from geminifusion_mmseg.datasets.transforms import (
        LoadMultiModalImageFromNDArray, read_image_unchanged)
    ds = DeLiVERDataset(data_root=deliver_root, split='val')
    kwargs = dict(encodings=DELIVER_ENCODINGS, resize_to_rgb=('event', ))
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        ref_out = LoadMultiModalImageFromFile(**kwargs)(dict(info))
        pil = LoadMultiModalImageFromFile(
            imdecode_backend='pillow', **kwargs)(
                dict(info))
        np.testing.assert_array_equal(pil['img'], ref_out['img'])
        paths = info['modality_paths']
        arrays = {
            m: read_image_unchanged(p)
            for m, p in paths.items() if m != 'rgb'
        }
        out = LoadMultiModalImageFromNDArray(**kwargs)(
            dict(
                img=read_image_unchanged(paths['rgb']),
                modality_arrays=arrays))
        assert out['modalities'] == ALL4
        np.testing.assert_array_equal(out['img'], ref_out['img'])


# ----------------------------------------------------------------------
# photometric transforms on uint8 (the DeLiVER / MFNet code line)
# ----------------------------------------------------------------------
def _tv_uint8_jitter(rgb, b, c, s):
    """torchvision's adjust_brightness/contrast/saturation on a uint8
    (3, H, W) tensor: float32 blend, clamp to 255, cast back (truncate);
    rgb_to_grayscale cast back to uint8 too."""

    def blend(x, y, r):
        return (r * x + (1.0 - r) * y).clamp(0, 255).to(torch.uint8)

    def gray(x):
        return (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]).to(
            torch.uint8)[None]

    x = blend(rgb, torch.zeros_like(rgb), b)
    mean = torch.mean(
        gray(x).to(torch.float32), dim=(-3, -2, -1), keepdim=True)
    x = blend(x, mean, c)
    return blend(x, gray(x), s)


def test_uint8_color_jitter_and_blur_match_torchvision_on_uint8():
    from geminifusion_mmseg.datasets.transforms import (RGBColorJitter,
                                                        RGBGaussianBlur)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (33, 47, 12)).astype(np.float32)
    rgb_u8 = torch.from_numpy(img[..., :3].astype(np.uint8)).permute(2, 0, 1)
    for factors in ((1.3, 0.7, 1.4), (0.6, 1.45, 0.55)):
        t = RGBColorJitter(prob=1., uint8=True)
        t._random_factors = lambda f=factors: f
        out = t(dict(img=img.copy()))['img']
        expected = _tv_uint8_jitter(rgb_u8, *factors).permute(1, 2, 0).numpy()
        diff = np.abs(out[..., :3] - expected)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        np.testing.assert_array_equal(out[..., 3:], img[..., 3:])
        # the float jitter does not truncate
        f = RGBColorJitter(prob=1.)
        f._random_factors = lambda f=factors: f
        assert not np.array_equal(f(dict(img=img.copy()))['img'], out)
    with pytest.raises(ValueError, match='uint8=True'):
        RGBColorJitter(uint8=True, clip_range=(0., 1.))
    # blur: torchvision's kernel on the uint8 tensor, rounded back
    out = RGBGaussianBlur(prob=1., uint8=True)(dict(img=img.copy()))['img']
    x = torch.linspace(-1, 1, 3)
    k1 = torch.exp(-0.5 * (x / 0.8)**2)
    k1 = k1 / k1.sum()
    k2 = (k1[:, None] * k1[None, :]).expand(3, 1, 3, 3)
    ref = F.conv2d(
        F.pad(rgb_u8[None].float(), (1, 1, 1, 1), mode='reflect'),
        k2,
        groups=3)[0].round().permute(1, 2, 0).numpy()
    diff = np.abs(out[..., :3] - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert np.array_equal(out[..., :3], np.round(out[..., :3]))
    np.testing.assert_array_equal(out[..., 3:], img[..., 3:])

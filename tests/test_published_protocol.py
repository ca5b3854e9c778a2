"""The published protocol, end to end: scores and training augmentation.

The oracle for scores is :mod:`geminifusion_mmseg.testing.literal_protocol`,
the release's ``main.py --evaluate`` path written as its code reads (Pillow
reading, torchvision-style two-step resize, normalisation, the literal
model, OpenCV bicubic upsampling of the logits, its confusion matrix and
``getScores``). ``tools/test.py`` with a zoo config and a converted
released-layout checkpoint must give the same per-class IoU and the same
rgb / depth / fused mIoU.
"""
import glob
import os.path as osp
import random
import re
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS

from geminifusion_mmseg.checkpoints import convert_released_checkpoint
from geminifusion_mmseg.datasets.transforms.size_mismatch import centre_crop
from geminifusion_mmseg.testing.literal_mit import literal_mit
from geminifusion_mmseg.testing.literal_protocol import (normalize,
                                                         read_sample, resize,
                                                         to_tensor, validate)
from geminifusion_mmseg.testing.literal_segmenter import (
    LiteralSegmenter, save_released_checkpoint)
from geminifusion_mmseg.visualization.rgbd_panel import (TITLE_HEIGHT,
                                                         colorize_depth)
from tests.helpers import block_labels, label_to_depth, write_list
from tests.helpers.synthetic_rgbd import _rgb_image, _write
from tests.helpers.tiny_configs import REPO
from tests.helpers.tiny_models import TINY_SEGMENTOR as TINY_MODEL
from tests.helpers.tiny_models import randomize_

ZOO = osp.join(REPO, 'configs', 'geminifusion')
NYU_B3 = osp.join(ZOO, 'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py')
TEST_TOOL = osp.join(REPO, 'tools', 'test.py')
# NYUDv2's own size, one that the protocol upscales (short side 425) and
# one it DOWNscales (short side 530, as SUN RGB-D images)
SIZES = ((480, 640), (425, 560), (530, 730))
# the released NYUDv2 copy: RGB and mask border-cropped (one size per
# image) beside the full 480x640 depth frame
CROPPED = ((441, 601), (467, 622))
FRAME = (480, 640)

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def _make_nyudv2(root: str) -> list:
    """NYUDv2 (TokenFusion layout): one image per size in SIZES, then
    the border-cropped RGB / mask of CROPPED beside 480x640 depth."""
    rng = np.random.default_rng(0)
    lines = []
    for i, size in enumerate(SIZES + CROPPED):
        name = f'{i:06d}.png'
        full = block_labels(
            FRAME if size in CROPPED else size, 40, rng, block=16)
        labels = centre_crop(full, size)
        _write(osp.join(root, 'rgb', name), _rgb_image(labels, rng), rgb=True)
        _write(osp.join(root, 'depth', name), label_to_depth(full, 16))
        _write(osp.join(root, 'masks', name), labels)
        lines.append(f'rgb/{name}\tmasks/{name}\tdepth/{name}')
    write_list(osp.join(root, 'test.txt'), lines)
    return lines


def _calibrate_classifier_(model, inputs, seed=5):
    """Make random weights predict most of the 40 classes.

    A randomly initialised head predicts a handful of classes: its features
    vary along few directions. Here the fuse BatchNorm gets the statistics
    of these inputs (as a trained model's would be), and the classifier
    whitens the fused features before a random projection, so that the
    argmax varies from pixel to pixel over most classes.
    """

    def collect(module):
        acts = []
        hook = module.register_forward_hook(lambda m, i, o: acts.append(o))
        with torch.no_grad():
            for x in inputs:
                model(x)
        hook.remove()
        return torch.cat([a.transpose(0, 1).flatten(1) for a in acts], 1)

    fuse = model.decoder.linear_fuse
    act = collect(fuse.conv)
    with torch.no_grad():
        fuse.bn.running_mean.copy_(act.mean(1))
        fuse.bn.running_var.copy_(act.var(1))
    z = collect(fuse).double()
    eig, vec = torch.linalg.eigh(torch.cov(z))
    whiten = vec @ torch.diag(eig.clamp_min(1e-3 * eig[-1])**-0.5) @ vec.T
    g = torch.Generator().manual_seed(seed)
    pred = model.decoder.linear_pred
    weight = torch.randn(
        pred.out_channels, z.shape[0], generator=g,
        dtype=torch.float64) @ whiten
    with torch.no_grad():
        pred.weight.copy_(weight.float()[:, :, None, None])
        pred.bias.copy_((-weight @ z.mean(1)).float())


def _per_class_table(log: str) -> dict:
    """Class -> IoU from mmseg's per-class table (NaN as float('nan'))."""
    table = log[log.rindex('per class results:'):]
    rows = re.findall(r'^\|\s*([^|]+?)\s*\|\s*([0-9.]+|nan)\s*\|', table, re.M)
    return {name: float(iou) for name, iou in rows if name != 'Class'}


def _metrics(log: str) -> dict:
    line = [ln for ln in log.splitlines() if 'Epoch(test)' in ln][-1]
    return {
        k: float(v)
        for k, v in re.findall(r'(\S+): ([0-9.]+)',
                               line.split(']', 1)[1])
    }


def test_tools_test_reproduces_the_release_evaluation(tmp_path, monkeypatch):
    root = str(tmp_path / 'nyudv2')
    lines = _make_nyudv2(root)

    # the literal published model, released layout, MiT-B0, 40 classes
    torch.manual_seed(0)
    encoder = literal_mit('mit_b0')
    literal = randomize_(
        LiteralSegmenter(encoder, encoder.embed_dims, 40), seed=3)
    inputs = []
    for line in lines:
        s = normalize(resize(to_tensor(read_sample(root, line, 'nyudv2'))))
        inputs.append([s['rgb'][None], s['depth'][None]])
    _calibrate_classifier_(literal, inputs)
    released = str(tmp_path / 'mit-b0.pth.tar')
    converted = str(tmp_path / 'mit-b0.pth')
    save_released_checkpoint(literal, released, 300, np.float64(0.5))
    convert_released_checkpoint(released, converted)

    ref = validate(literal, root, lines, 'nyudv2')
    predicted = set()
    with torch.no_grad():
        for x in inputs:
            predicted |= set(literal(x)[2].argmax(1).unique().tolist())
    assert len(predicted) >= 30  # a fragmented, many-class prediction

    # ours: the zoo config, through tools/test.py
    cfg = tmp_path / 'nyu_b0.py'
    cfg.write_text(f"""_base_ = [{NYU_B3!r}]
data_root = {root!r}
model = dict(
    backbone=dict(arch='b0', drop_path_rate=0.0, init_cfg=None),
    decode_head=dict(in_channels=[32, 64, 160, 256]))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, ann_file='test.txt'))
test_dataloader = val_dataloader
""")
    work_dir = str(tmp_path / 'work')
    monkeypatch.setattr(sys, 'argv', [
        'test.py',
        str(cfg), converted, '--work-dir', work_dir, '--show-dir', 'panels'
    ])
    runpy.run_path(TEST_TOOL, run_name='__main__')
    with open(glob.glob(osp.join(work_dir, '*', '*.log'))[0]) as f:
        log = f.read()

    # every per-class IoU of the fused prediction (mmseg rounds to 0.01)
    classes = Config.fromfile(str(cfg)).get('classes', None)
    table = _per_class_table(log)
    assert len(table) == 40
    names = list(table)
    if classes is not None:
        assert tuple(names) == tuple(classes)
    ours_iou = np.array([table[n] for n in names])
    ref_iou = ref[2]['iou']
    np.testing.assert_array_equal(np.isnan(ours_iou), np.isnan(ref_iou))
    ok = ~np.isnan(ref_iou)
    assert ok.sum() >= 30
    np.testing.assert_allclose(ours_iou[ok], ref_iou[ok], rtol=0, atol=0.02)
    # the three mIoUs
    metrics = _metrics(log)
    for key, r in (('rgb.mIoU', ref[0]), ('depth.mIoU', ref[1]), ('mIoU',
                                                                  ref[2])):
        assert metrics[key] == pytest.approx(r['miou'], abs=0.02), key

    # --show-dir: the depth tile of a border-cropped sample is the depth
    # the release's model sees (stretched onto the RGB image)
    for i in range(len(SIZES), len(lines)):
        name = f'{i:06d}'
        panel = cv2.imread(osp.join(work_dir, 'panels', name + '.png'))
        depth = inputs[i][1][0, 0].numpy() * 255  # (h, w), /255 undone
        h, w = depth.shape
        assert panel.shape[0] == h + TITLE_HEIGHT
        tile = panel[TITLE_HEIGHT:, w:2 * w, ::-1].astype(np.float32)
        expected = colorize_depth(depth).astype(np.float32)
        assert np.abs(tile - expected).mean() < 0.5, name


def test_bilinear_logits_would_not_reproduce_the_release():
    """Why the zoo configs set resize_mode='bicubic': on fragmented logits
    bilinear and OpenCV-bicubic upsampling disagree near boundaries."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 30, 40)).astype(np.float32) * 4
    ref = cv2.resize(
        logits.transpose(1, 2, 0), (160, 120),
        interpolation=cv2.INTER_CUBIC).argmax(2)
    x = torch.from_numpy(logits)[None]
    bicubic = F.interpolate(
        x, size=(120, 160), mode='bicubic', align_corners=False)[0]
    bilinear = F.interpolate(
        x, size=(120, 160), mode='bilinear', align_corners=False)[0]
    assert (bicubic.argmax(0).numpy() == ref).mean() > 0.9999
    assert (bilinear.argmax(0).numpy() == ref).mean() < 0.95


# ----------------------------------------------------------------------
# the segmentor's test-time resize
# ----------------------------------------------------------------------
def _tiny_model(**test_cfg):
    cfg = dict(TINY_MODEL, test_cfg=dict(mode='whole', **test_cfg))
    return MODELS.build(cfg).eval()


@pytest.mark.parametrize('size', [(61, 83), (64, 96)])
def test_bicubic_mode_is_opencv_inter_cubic_on_every_branch(size):
    torch.manual_seed(0)
    model = _tiny_model(resize_mode='bicubic')
    x = torch.randn(1, 6, *size)
    meta = [dict(img_shape=size, ori_shape=size, pad_shape=size)]
    with torch.no_grad():
        low = torch.stack(model._branch_logits(x), 1)[0]  # (3, K, h, w)
        ours = model._inference_all(x, meta)[0]  # (3, K, H, W)
    for branch in range(3):
        ref = cv2.resize(
            low[branch].numpy().transpose(1, 2, 0),
            size[::-1],
            interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1)
        scale = np.abs(ref).max()
        assert np.abs(ours[branch].numpy() - ref).max() / scale < 1e-5
        assert (ours[branch].argmax(0).numpy() == ref.argmax(0)).mean() \
            > 0.9999


def test_resize_mode_reaches_ori_shape_and_slide_windows():
    """postprocess_result (ori_shape != input size, e.g. mmseg's protocol
    or --tta views) and slide windows use the same mode."""
    torch.manual_seed(0)
    bicubic = _tiny_model(resize_mode='bicubic')
    bilinear = _tiny_model()
    bilinear.load_state_dict(bicubic.state_dict())
    assert bilinear.resize_mode == 'bilinear'  # mmseg's default
    logits = torch.randn(1, 5, 32, 48)
    from mmseg.structures import SegDataSample
    meta = dict(img_shape=(32, 48), ori_shape=(45, 67), padding_size=[0] * 4)
    out = bicubic.postprocess_result(logits, [SegDataSample(metainfo=meta)])
    ref = F.interpolate(
        logits, size=(45, 67), mode='bicubic', align_corners=False)[0]
    torch.testing.assert_close(out[0].seg_logits.data, ref)
    out = bilinear.postprocess_result(logits, [SegDataSample(metainfo=meta)])
    ref = F.interpolate(
        logits, size=(45, 67), mode='bilinear', align_corners=False)[0]
    torch.testing.assert_close(out[0].seg_logits.data, ref)

    x = torch.randn(1, 6, 48, 64)
    slide = dict(mode='slide', crop_size=(32, 32), stride=(16, 16))
    results = []
    for mode in ('bicubic', 'bilinear'):
        model = MODELS.build(
            dict(TINY_MODEL, test_cfg=ConfigDict(slide, resize_mode=mode)))
        model.load_state_dict(bicubic.state_dict())
        with torch.no_grad():
            results.append(model.eval()._inference_all(
                x, [dict(img_shape=(48, 64), ori_shape=(48, 64))]))
    # the top-left 16x16 corner is covered by the first window only
    with torch.no_grad():
        low = torch.stack(bicubic._branch_logits(x[..., :32, :32]), 1)[0]
    ref = F.interpolate(
        low, size=(32, 32), mode='bicubic', align_corners=False)
    torch.testing.assert_close(results[0][0, :, :, :16, :16],
                               ref[..., :16, :16])
    assert not torch.allclose(results[0], results[1])


def test_unknown_resize_mode_is_refused():
    with pytest.raises(ValueError, match="resize_mode.*'area'"):
        _tiny_model(resize_mode='area')


# ----------------------------------------------------------------------
# the zoo: protocol and training augmentation as released
# ----------------------------------------------------------------------
ZOO_CONFIGS = sorted(glob.glob(osp.join(ZOO, '*.py')))


@pytest.mark.parametrize('path', ZOO_CONFIGS, ids=osp.basename)
def test_zoo_configs_follow_the_release(path):
    cfg = Config.fromfile(path)
    assert cfg.test_dataloader.dataset.pipeline[2].type == \
        'ResizeShortSideToMultiple'
    jitter = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t.type == 'RGBColorJitter'
    ]
    assert len(jitter) == 1 and jitter[0].prob == 0.2
    if 'deliver' in osp.basename(path):
        # the DeLiVER branch: bilinear logits (mmseg's default), uint8
        # jitter clamped to 255 (docs/model.md "K modalities")
        assert cfg.model.test_cfg.get('resize_mode', 'bilinear') == 'bilinear'
        assert tuple(jitter[0].clip_range) == (0., 255.)
        return
    assert cfg.model.test_cfg.resize_mode == 'bicubic'
    assert tuple(jitter[0].clip_range) == (0., 1.)  # the release's blackout


def test_quickstart_keeps_mmseg_defaults():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'quickstart',
                 'geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py'))
    assert cfg.model.test_cfg.get('resize_mode', 'bilinear') == 'bilinear'


def test_zoo_training_pipeline_blanks_rgb_at_the_release_rate(tmp_path):
    """Through the real NYUDv2 zoo training pipeline: about 20% of the
    samples leave it with RGB inside [0, 1] (nearly black once normalised),
    the others with their colours; depth is never touched by it."""
    from tests.helpers import make_nyudv2_tokenfusion
    root = make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=4, num_test=0)
    cfg = Config.fromfile(NYU_B3)
    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=root))
    np.random.seed(0)
    n, blank = 200, 0
    for i in range(n):
        img = dataset[i % len(dataset)]['inputs']  # (6, 480, 640)
        rgb_max = float(img[:3].max())
        assert float(img[3:].max()) > 255  # raw 16-bit depth, untouched
        if rgb_max <= 1.0 + 1e-5:  # (bilinear rounding at the crop)
            blank += 1
        else:
            assert rgb_max > 100
    assert 0.12 <= blank / n <= 0.28, blank / n


# ----------------------------------------------------------------------
# the training geometry on the released layout (depth larger than RGB)
# ----------------------------------------------------------------------
def _release_train_geometry(root, lines, crop_size, seed):
    """The release's flip + RandomResizedCrop on one sample per line;
    returns (samples, flipped, windows) for the random state of ``seed``
    (the state before the crop too, to replay it)."""
    from geminifusion_mmseg.testing.literal_augmentation import (
        RandomHorizontalFlip, RandomResizedCrop)
    out = []
    for k, line in enumerate(lines):
        sample = to_tensor(read_sample(root, line, 'nyudv2'))
        random.seed(seed * 100 + k)
        flipped = random.random() < 0.5
        random.seed(seed * 100 + k)
        sample = RandomHorizontalFlip(0.5)(sample)
        state = random.getstate()
        crop = RandomResizedCrop(list(crop_size), (0.5, 2.0), seg_fill=255)
        sample = crop(sample)
        out.append((sample, flipped, state, crop.last))
    return out


@pytest.mark.parametrize('frame,crop_size,seeds', [
    ((60, 80), (48, 64), range(8)),
    ((480, 640), (480, 640), range(2)),
])
def test_training_geometry_reproduces_the_release(tmp_path, frame, crop_size,
                                                  seeds):
    """The released NYUDv2 layout (RGB and mask border-cropped, depth the
    full frame): our loader ('stretch') + RandomFlip + RandomRescaleCrop
    give the release's RandomHorizontalFlip + RandomResizedCrop window and
    pixels for the same random state."""
    from tests.helpers import make_nyudv2_tokenfusion
    root = make_nyudv2_tokenfusion(
        tmp_path / 'nyu', num_train=4, num_test=0, size=frame, block=8)
    with open(osp.join(root, 'train.txt')) as f:
        lines = f.read().splitlines()
    init_default_scope('mmseg')

    def pipeline(flip):
        return DATASETS.build(
            dict(
                type='NYUDv2Dataset',
                data_root=root,
                ann_file='train.txt',
                size_mismatch='stretch',
                pipeline=[
                    dict(type='LoadRGBDImageFromFile'),
                    dict(type='LoadRGBDAnnotations'),
                    dict(type='RandomFlip', prob=1.0 if flip else 0.0),
                    dict(type='RandomRescaleCrop', crop_size=crop_size)
                ]))

    ours = {flip: pipeline(flip) for flip in (False, True)}
    seen = set()
    for seed in seeds:
        for k, (ref, flipped, state, window) in enumerate(
                _release_train_geometry(root, lines, crop_size, seed)):
            random.setstate(state)
            results = ours[flipped][k]
            assert 'unaligned_modalities' not in results
            y1, _, x1, _ = results['crop_bbox']
            assert (y1, x1) == (window['y1'], window['x1'])
            h, w = results['gt_seg_map'].shape[:2]
            assert (h, w) == tuple(crop_size)
            expected = torch.cat([ref['rgb'], ref['depth']]).permute(1, 2, 0)
            np.testing.assert_allclose(
                results['img'], expected.numpy(), rtol=2e-6, atol=1e-3)
            np.testing.assert_array_equal(results['gt_seg_map'],
                                          ref['mask'].numpy())
            rgb_size = cv2.imread(osp.join(root, lines[k].split()[0])).shape
            nh, nw = window['size']
            margin_h, margin_w = max(nh - crop_size[0],
                                     0), max(nw - crop_size[1], 0)
            seen.add('flip' if flipped else 'no flip')
            seen.add('up' if nh > rgb_size[0] else 'down')
            if rgb_size[:2] != frame:
                seen.add('depth larger')
            if y1 == margin_h + 1 or x1 == margin_w + 1:
                seen.add('off by one')
                # the window starts one past the last full one: the last
                # row / column is padding (label 255, image 0)
                if y1 == margin_h + 1:
                    assert (results['gt_seg_map'][-1] == 255).all()
                    assert (results['img'][-1] == 0).all()
    expected = {'flip', 'no flip', 'up', 'down', 'depth larger'}
    if len(seeds) > 2:
        expected.add('off by one')
    assert expected <= seen, seen


def test_training_geometry_on_integer_images_as_the_deliver_line():
    """The DeLiVER branch (and CMNeXt) runs the same RandomResizedCrop code
    on the integer tensors of ``torchvision.io.read_image``: with
    ``round_result=True`` RandomRescaleCrop gives its window and pixels
    (rounded per modality, as torchvision resizes integer tensors)."""
    from geminifusion_mmseg.testing.literal_augmentation import \
        RandomResizedCrop
    rng = np.random.default_rng(0)
    crop_size = (40, 48)
    transform = TRANSFORMS.build(
        dict(type='RandomRescaleCrop', crop_size=crop_size, round_result=True))
    for seed in range(6):
        h, w = (int(v) for v in rng.integers(25, 70, 2))
        rgb = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        depth = np.repeat(
            rng.integers(0, 60000, (h, w, 1)), 3, axis=2).astype(np.int32)
        label = rng.integers(0, 25, (h, w)).astype(np.uint8)
        ref = dict(
            rgb=torch.from_numpy(rgb.transpose(2, 0, 1).copy()),
            depth=torch.from_numpy(depth.transpose(2, 0, 1).copy()),
            mask=torch.from_numpy(label))
        random.seed(seed)
        ref = RandomResizedCrop(list(crop_size), seg_fill=255)(ref)
        random.seed(seed)
        ours = transform(
            dict(
                img=np.concatenate([rgb, depth], axis=2).astype(np.float32),
                gt_seg_map=label,
                seg_fields=['gt_seg_map']))
        expected = torch.cat([ref['rgb'].int(), ref['depth']]).permute(1, 2, 0)
        np.testing.assert_array_equal(ours['img'],
                                      expected.numpy().astype(np.float32))
        np.testing.assert_array_equal(ours['gt_seg_map'], ref['mask'].numpy())

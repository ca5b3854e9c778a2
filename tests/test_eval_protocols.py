"""Evaluation protocols: multi-scale + flip (``--tta``) and sliding window.

Flip equivariance, needed for "TTA with flip only == plain output on a
left-right symmetric input" (a property of the MODEL, not of the TTA code):
the output for a symmetric input is symmetric only if every layer commutes
with the flip. For GeminiFusion-MiT that needs

* symmetric kernels: a learned 7x7 / 3x3 conv is not mirror-symmetric, so
  the test symmetrises every Conv2d kernel along the width (trained
  weights are not symmetric: on real models TTA flip changes the output,
  which is the point of TTA). Linear layers, LayerNorm, the pixel-wise
  GeminiFusion layer, global attention and bilinear resizing
  (align_corners=False) commute with the flip;
* sampling grids symmetric about the image centre: a conv with stride s,
  kernel k and padding (k - 1) / 2 samples columns 0, s, 2s, ..., which
  mirror onto themselves only if (W_in - 1) is a multiple of s. MiT's
  patch embeddings (stride 4, then 2, 2, 2) therefore need
  W = 1 + 4 (w1 - 1) with w1 - 1, w2 - 1, w3 - 1 even: W = 33 (stage widths
  9, 5, 3, 2) or 65. A width that is a multiple of 32 (64) is NOT
  symmetric (columns 0..60 vs 3..63): checked below;
* no spatial-reduction conv whose windows leave columns out (sr_ratios
  (8, 4, 2, 1) with kernel = stride): the test model uses sr_ratios 1;
* no padding on one side: the data preprocessor pads test inputs only in
  training (``size_divisor``), and the test pipelines here do not pad.
"""
import copy
import glob
import os.path as osp
import re
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmseg.registry import MODELS

from geminifusion_mmseg.engine.model_wrappers import RGBDSegTTAModel
from tests.helpers import make_nyudv2_tokenfusion
from tests.helpers.tiny_configs import REPO, save_checkpoint, write_tiny_config
from tests.helpers.tiny_models import TINY_SEGMENTOR as TINY_MODEL

NYU_B3 = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
TEST_TOOL = osp.join(REPO, 'tools', 'test.py')
PLAIN_TEST_PIPELINE = """
val_dataloader['dataset']['pipeline'] = [
    dict(type='LoadRGBDImageFromFile'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='PackSegInputs'),
]
"""


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    """Synthetic NYUDv2 (48x64) and a tiny checkpoint of the zoo config."""
    tmp = tmp_path_factory.mktemp('eval')
    # every file 48x64 (no border crop): the view sizes are checked below
    root = make_nyudv2_tokenfusion(
        tmp / 'nyu', num_train=1, num_test=2, border_crop=False)
    cfg_path = write_tiny_config(
        str(tmp / 'ckpt_cfg.py'), NYU_B3, root, test_ann_file='test.txt')
    model = MODELS.build(Config.fromfile(cfg_path).model)
    return dict(
        tmp=tmp, root=root, ckpt=save_checkpoint(model, tmp / 'tiny.pth'))


def _run_test_tool(monkeypatch, tiny_run, name, *args, extra=''):
    """tools/test.py on the tiny config ``name``; returns its log text."""
    tmp = tiny_run['tmp']
    cfg = write_tiny_config(
        str(tmp / f'{name}.py'),
        NYU_B3,
        tiny_run['root'],
        test_ann_file='test.txt',
        extra=extra)
    work_dir = str(tmp / f'wd_{name}')
    monkeypatch.setattr(
        sys, 'argv',
        ['test.py', cfg, tiny_run['ckpt'], '--work-dir', work_dir, *args])
    runpy.run_path(TEST_TOOL, run_name='__main__')
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        return f.read()


def _metrics(log):
    line = [line for line in log.splitlines() if 'Epoch(test)' in line][-1]
    return dict(re.findall(r'(\S+): ([0-9.]+)', line.split(']', 1)[1]))


def test_tta_end_to_end(monkeypatch, tiny_run):
    """--tta: 6 scales x 2 flips per image, merged at the label size."""
    views = []
    merge = RGBDSegTTAModel.merge_preds

    def spy(self, data_samples_list):
        for samples in data_samples_list:
            views.append([(s.metainfo['img_shape'], s.metainfo['flip'],
                           tuple(s.seg_logits.data.shape)) for s in samples])
        return merge(self, data_samples_list)

    monkeypatch.setattr(RGBDSegTTAModel, 'merge_preds', spy)
    # the shipped tta_pipeline, its test-size resize made 48x64 -> 48x64
    log = _run_test_tool(monkeypatch, tiny_run, 'tta', '--tta',
                         '--cfg-options', 'tta_pipeline.1.short_side=48',
                         'tta_pipeline.1.size_divisor=16')
    metrics = _metrics(log)
    assert 0 <= float(metrics['mIoU']) <= 100
    # the fused prediction only: no branch scores from one view
    assert 'rgb.mIoU' not in metrics
    assert len(views) == 2  # images
    for image_views in views:
        assert len(image_views) == 12
        shapes = sorted({v[0] for v in image_views})
        assert shapes == [(24, 32), (36, 48), (48, 64), (60, 80), (72, 96),
                          (84, 112)]
        assert sorted(v[1] for v in image_views) == [False] * 6 + [True] * 6
        # every view's logits are back at the label size (40 classes)
        assert {v[2] for v in image_views} == {(40, 48, 64)}


def test_slide_inference_through_the_test_tool(monkeypatch, tiny_run):
    """48x64 inputs, 32x32 windows with stride 16 (2 x 3 windows)."""
    log = _run_test_tool(
        monkeypatch,
        tiny_run,
        'slide',
        '--cfg-options',
        'model.test_cfg.mode=slide',
        'model.test_cfg.crop_size=(32,32)',
        'model.test_cfg.stride=(16,16)',
        extra=PLAIN_TEST_PIPELINE)
    metrics = _metrics(log)
    assert 0 <= float(metrics['mIoU']) <= 100
    assert 'rgb.mIoU' in metrics  # single view: branch scores too
    assert "mode='slide'" in log


# ----------------------------------------------------------------------
# flip-only TTA
# ----------------------------------------------------------------------
def _flip_symmetric_model(sr_ratios=(1, 1, 1, 1)):
    cfg = copy.deepcopy(TINY_MODEL)
    cfg['backbone']['sr_ratios'] = sr_ratios
    model = MODELS.build(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_((m.weight + m.weight.flip(-1)) / 2)
    return model


def _write_pair(folder, rgb, depth, label):
    paths = {}
    for name, image in (('rgb', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)),
                        ('depth', depth), ('label', label)):
        paths[name] = osp.join(str(folder), f'{name}.png')
        assert cv2.imwrite(paths[name], image)
    return dict(
        img_path=paths['rgb'],
        depth_path=paths['depth'],
        seg_map_path=paths['label'],
        seg_fields=[],
        reduce_zero_label=False,
        num_classes=5)


def _random_pair(folder, size, symmetric, seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.integers(0, 20000, (h, w), dtype=np.uint16)
    label = rng.integers(0, 5, (h, w), dtype=np.uint8)
    if symmetric:
        rgb, depth, label = (
            np.ascontiguousarray(
                np.concatenate([a[:, :(w + 1) // 2], a[:, :w // 2][:, ::-1]],
                               axis=1)) for a in (rgb, depth, label))
        assert (rgb == rgb[:, ::-1]).all() and (depth == depth[:, ::-1]).all()
    return _write_pair(folder, rgb, depth, label)


LOAD = [dict(type='LoadRGBDImageFromFile'), dict(type='LoadRGBDAnnotations')]
FLIP_ONLY_TTA = Compose([
    dict(type='LoadRGBDImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale_factor=1.0, keep_ratio=True)],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ], [dict(type='LoadRGBDAnnotations')],
            [dict(type='PackSegInputs')]
        ])
])


def _plain_logits(model, info):
    data = Compose(LOAD + [dict(type='PackSegInputs')])(dict(info))
    with torch.no_grad():
        return model.test_step(pseudo_collate([data]))[0].seg_logits.data


def _tta_logits(model, info, merge='logits'):
    tta = RGBDSegTTAModel(module=model, merge=merge).eval()
    with torch.no_grad():
        result = tta.test_step(pseudo_collate([FLIP_ONLY_TTA(dict(info))]))
    assert 'pred_sem_seg_rgb' not in result[0]
    torch.testing.assert_close(result[0].pred_sem_seg.data[0],
                               result[0].seg_logits.data.argmax(0))
    return result[0].seg_logits.data


def test_flip_tta_of_a_symmetric_input_equals_the_plain_output(tmp_path):
    model = _flip_symmetric_model()
    info = _random_pair(tmp_path, (32, 33), symmetric=True)
    plain = _plain_logits(model, info)
    assert plain.shape == (5, 32, 33)
    # the model maps this symmetric input to a symmetric output ...
    torch.testing.assert_close(plain, plain.flip(-1), atol=1e-5, rtol=0)
    # ... so averaging it with the flipped view changes nothing
    torch.testing.assert_close(
        _tta_logits(model, info), plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        _tta_logits(model, info, merge='probs'),
        plain.log_softmax(0),
        atol=1e-5,
        rtol=0)


def test_width_64_breaks_the_symmetry(tmp_path):
    """Why the test above uses W = 33: strided grids at W = 64."""
    model = _flip_symmetric_model()
    plain = _plain_logits(model,
                          _random_pair(tmp_path, (32, 64), symmetric=True))
    assert (plain - plain.flip(-1)).abs().max() > 1e-3


def test_flip_tta_averages_the_flipped_back_views(tmp_path):
    """Any model, any input: TTA = mean(P(x), flip(P(flip(x))))."""
    model = MODELS.build(copy.deepcopy(TINY_MODEL)).eval()
    info = _random_pair(tmp_path, (48, 64), symmetric=False)
    flipped_dir = tmp_path / 'flipped'
    flipped_dir.mkdir()
    rgb, depth, label = (
        np.ascontiguousarray(
            cv2.imread(info[k], cv2.IMREAD_UNCHANGED)[:, ::-1])
        for k in ('img_path', 'depth_path', 'seg_map_path'))
    flipped = _write_pair(flipped_dir, cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB),
                          depth, label)
    expected = (_plain_logits(model, info) +
                _plain_logits(model, flipped).flip(-1)) / 2
    torch.testing.assert_close(
        _tta_logits(model, info), expected, atol=1e-5, rtol=0)


def test_tta_model_rejects_unknown_merge():
    with pytest.raises(ValueError, match="merge must be one of.*'mean'"):
        RGBDSegTTAModel(module=copy.deepcopy(TINY_MODEL), merge='mean')


def test_shipped_tta_views_are_scales_of_the_test_size(tmp_path):
    """SUN RGB-D-like 427x561: test size 480x640; labels stay 427x561."""
    cfg = Config.fromfile(
        osp.join(
            REPO, 'configs/geminifusion/'
            'geminifusion_mit-b3_4xb2-300e_sunrgbd-480x480.py'))
    info = _random_pair(tmp_path, (427, 561), symmetric=False)
    views = Compose(cfg.tta_pipeline)(dict(info))
    shapes = [s.metainfo['img_shape'] for s in views['data_samples']]
    assert len(shapes) == 12
    assert sorted(set(shapes)) == [(240, 320), (360, 480), (480, 640),
                                   (600, 800), (720, 960), (840, 1120)]
    for sample in views['data_samples']:
        assert sample.metainfo['ori_shape'] == (427, 561)
        assert sample.gt_sem_seg.data.shape == (1, 427, 561)

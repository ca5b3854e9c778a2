"""Generic names for generic pieces, the old names kept: ``MultiModalPad``
(was ``RGBDPad``), ``MultiModalSegTTAModel`` (was ``RGBDSegTTAModel``) and
the segmentor's ``num_streams`` (was ``num_modalities``, now a deprecated
alias that warns once), ``utils.benchmark`` (was ``testing.benchmark``).
Configs with the old names build the same class and give identical
results."""
import logging
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

import geminifusion_mmseg.models.segmentors.multimodal_encoder_decoder as med
from geminifusion_mmseg.datasets import MultiModalPad, RGBDPad
from geminifusion_mmseg.engine.model_wrappers import (MultiModalSegTTAModel,
                                                      RGBDSegTTAModel)
from tests.helpers.tiny_configs import QUICKSTART, REPO, write_tiny_config

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def segmentor(tmp_path_factory):
    cfg = write_tiny_config(
        str(tmp_path_factory.mktemp('cfg') / 'tiny.py'), QUICKSTART, 'data')
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(cfg).model).eval()


def _sample(h=30, w=41, channels=6):
    rng = np.random.default_rng(0)
    return dict(
        img=rng.integers(0, 255, (h, w, channels), dtype=np.uint8),
        gt_seg_map=rng.integers(0, 5, (h, w), dtype=np.uint8),
        seg_fields=['gt_seg_map'],
        img_shape=(h, w))


@pytest.mark.parametrize('channels', [6, 9])
def test_old_pad_name_builds_the_same_transform(channels):
    assert RGBDPad is MultiModalPad
    assert TRANSFORMS.get('RGBDPad') is TRANSFORMS.get('MultiModalPad')
    out = {}
    for name in ('RGBDPad', 'MultiModalPad'):
        pad = TRANSFORMS.build(
            dict(
                type=name,
                size=(64, 48),
                pad_val=dict(img=tuple(range(1, channels + 1)), seg=255)))
        assert type(pad) is MultiModalPad
        out[name] = pad(_sample(channels=channels))
    old, new = out['RGBDPad'], out['MultiModalPad']
    assert new['img'].shape == (48, 64, channels)
    assert (new['img'][30:, :, -1] == channels).all()
    assert np.array_equal(old['img'], new['img'])
    assert np.array_equal(old['gt_seg_map'], new['gt_seg_map'])
    assert old['pad_shape'] == new['pad_shape']


def _views(h=32, w=40):
    """Two TTA views of one RGB-D image (plain, flipped back by the
    segmentor), as a TestTimeAug pipeline packs them."""
    img = torch.from_numpy(_sample(h, w)['img']).permute(2, 0, 1)
    views = []
    for flip in (False, True):
        meta = dict(
            ori_shape=(h, w),
            img_shape=(h, w),
            pad_shape=(h, w),
            padding_size=[0, 0, 0, 0],
            flip=flip,
            flip_direction='horizontal' if flip else None)
        views.append(
            (img.flip(-1) if flip else img, SegDataSample(metainfo=meta)))
    return dict(
        inputs=[[v[0]] for v in views], data_samples=[[v[1]] for v in views])


@pytest.mark.parametrize('merge', ['logits', 'probs'])
def test_old_tta_name_builds_the_same_model(segmentor, merge):
    assert RGBDSegTTAModel is MultiModalSegTTAModel
    assert MODELS.get('RGBDSegTTAModel') is MODELS.get('MultiModalSegTTAModel')
    logits = {}
    for name in ('RGBDSegTTAModel', 'MultiModalSegTTAModel'):
        tta = MODELS.build(dict(type=name, module=segmentor, merge=merge))
        assert type(tta) is MultiModalSegTTAModel
        with torch.no_grad():
            result = tta.test_step(_views())[0]
        logits[name] = result.seg_logits.data
        assert torch.equal(result.pred_sem_seg.data[0], logits[name].argmax(0))
    assert logits['MultiModalSegTTAModel'].shape[-2:] == (32, 40)
    assert torch.equal(logits['RGBDSegTTAModel'],
                       logits['MultiModalSegTTAModel'])


def test_configs_use_the_new_names_and_an_old_config_still_builds():
    cfg = Config.fromfile(osp.join(REPO, QUICKSTART))
    assert cfg.tta_model.type == 'MultiModalSegTTAModel'
    assert 'MultiModalPad' in [t['type'] for t in cfg.train_pipeline]
    old = [
        dict(t, type='RGBDPad') if t['type'] == 'MultiModalPad' else t
        for t in cfg.train_pipeline
    ]
    assert [type(TRANSFORMS.build(t)) for t in old] == \
        [type(TRANSFORMS.build(t)) for t in cfg.train_pipeline]


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_num_modalities_is_a_deprecated_alias_of_num_streams(
        segmentor, monkeypatch):
    monkeypatch.setattr(med, '_warned_num_modalities', False)
    handler = _Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        assert segmentor.num_streams == 2 == len(segmentor.modality_names)
        assert handler.messages == []
        assert segmentor.num_modalities == 2
        assert segmentor.num_modalities == 2
        segmentor.num_modalities = 2  # the setter sets num_streams
    finally:
        logger.removeHandler(handler)
    assert segmentor.num_streams == 2
    assert len(handler.messages) == 1  # once per process
    assert 'num_modalities is deprecated' in handler.messages[0]
    assert 'use num_streams' in handler.messages[0]


def test_benchmark_helpers_moved_and_the_old_module_still_imports():
    """Measurement is not testing: the benchmark tool's helpers live in
    utils/benchmark.py; the old module re-exports the same objects."""
    import geminifusion_mmseg.testing.benchmark as old
    import geminifusion_mmseg.utils.benchmark as new
    assert old.__all__ == new.__all__
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
    with open(osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py')) as f:
        assert 'geminifusion_mmseg.testing.benchmark' not in f.read()

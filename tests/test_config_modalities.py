"""Modalities declared once: the segmentor and the metric derive
in_channels, num_modalities and the stream (branch) names from
``modalities``; the DeLiVER / MFNet / quickstart RGB-D-T configs build
what they built before they did."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import METRICS, MODELS

from tests.helpers.tiny_models import TINY_SEGMENTOR

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_BASE = osp.join(REPO,
                      'configs/_base_/models/geminifusion_mit_deliver.py')
RGB_MEAN = [123.675, 116.28, 103.53]
RGB_STD = [58.395, 57.12, 57.375]

# What each config resolved to before its modalities were declared once
# (read from the configs of that time, which spelled every value out):
# modalities, backbone in_channels / num_modalities, the segmentor's
# stream names = the evaluators' branches.
BEFORE = {
    'geminifusion/geminifusion_mit-b2_8xb1-200e_deliver-rgbd-1024x1024.py':
    (['rgb', 'depth'], 6, 2, ('rgb', 'depth')),
    'geminifusion/geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py':
    (['rgb', 'depth', 'event', 'lidar'], 12, 4, ('rgb', 'fused')),
    'geminifusion/geminifusion_mit-b2_8xb1-200e_deliver-rgbe-1024x1024.py':
    (['rgb', 'event'], 6, 2, ('rgb', 'event')),
    'geminifusion/geminifusion_mit-b2_8xb1-200e_deliver-rgbl-1024x1024.py':
    (['rgb', 'lidar'], 6, 2, ('rgb', 'lidar')),
    'mfnet/geminifusion_mit-b4_4xb4-500e_mfnet-rgbt-480x640.py':
    (['rgb', 'thermal'], 6, 2, ('rgb', 'thermal')),
}
# dpr, arch and classes of the same configs then (unchanged by the move)
BEFORE_REST = {
    'deliver-rgbd-': ('b2', 0.4, 25),
    'deliver-rgbdel-': ('b2', 0.2, 25),
    'deliver-rgbe-': ('b2', 0.4, 25),
    'deliver-rgbl-': ('b2', 0.4, 25),
    'mfnet-rgbt': ('b4', 0.4, 9),
}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')

# The quickstart's K-modality configs (they hold their own modality list):
# backbone in_channels / num_modalities and stream names of before.
QUICKSTART_BEFORE = {
    'quickstart/geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py':
    (['rgb', 'depth', 'thermal'], 9, 3, ('rgb', 'fused')),
    'quickstart/geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-rgbd-only-'
    '96x128.py': (['rgb', 'depth'], 6, 2, ('rgb', 'depth')),
}


def _check_declared_once(cfg, modalities, in_channels, num_modalities,
                         streams):
    """The model and the evaluators take ``modalities`` and spell out none
    of the values derived from it, and these resolve to the values of
    before; returns the built model."""
    assert list(cfg.modalities) == modalities
    assert list(cfg.model.modalities) == modalities
    assert cfg.model.get('modality_names') is None
    assert cfg.model.backbone.get('in_channels') is None
    assert cfg.model.backbone.get('num_modalities') is None
    for key in EVALUATORS:
        assert cfg[key].get('branches') is None
        assert list(cfg[key].modalities) == modalities
    for key in LOADERS:
        assert list(cfg[key].dataset.modalities) == modalities
    others = len(modalities) - 1
    assert cfg.model.data_preprocessor.mean == RGB_MEAN + [0.0] * 3 * others
    assert cfg.model.data_preprocessor.std == RGB_STD + [255.0] * 3 * others
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.in_channels == in_channels
    assert model.backbone.num_modalities == num_modalities
    assert model.num_streams == 2
    assert model.modality_names == streams
    assert model.branch_names == list(streams) + ['ens']
    assert model.modalities == tuple(modalities)
    for key in EVALUATORS:
        metric = METRICS.build(cfg[key])
        assert type(metric).__name__ == 'MultiBranchIoUMetric'
        assert metric.branches == streams
        assert metric.metrics == ['mIoU']
    return model


@pytest.mark.parametrize('name', sorted(BEFORE))
def test_configs_build_what_they_built_before(name):
    path = osp.join(REPO, 'configs', name)
    with open(path, encoding='utf-8') as f:
        assert "'rgb'" not in f.read()  # no modality list of its own
    model = _check_declared_once(Config.fromfile(path), *BEFORE[name])
    cfg = Config.fromfile(path)
    arch, dpr, classes = next(v for k, v in BEFORE_REST.items() if k in name)
    assert cfg.model.backbone.arch == arch
    assert model.backbone.drop_path_rate == dpr
    assert model.decode_head.num_classes == classes


@pytest.mark.parametrize('name', sorted(QUICKSTART_BEFORE))
def test_quickstart_configs_build_what_they_built_before(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    model = _check_declared_once(cfg, *QUICKSTART_BEFORE[name])
    assert list(model.backbone.embed_dims) == [32, 64, 160, 256]
    assert model.decode_head.num_classes == 8


def test_one_override_reaches_model_and_branches():
    """Changing model.modalities alone rebuilds the backbone's input side
    and renames the branches (here K = 3 instead of 4)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs',
                                   sorted(BEFORE)[1]))  # RGB-D-E-L
    cfg.merge_from_dict({
        'model.modalities': ['rgb', 'depth', 'event'],
        'model.data_preprocessor.mean': RGB_MEAN + [0.0] * 6,
        'model.data_preprocessor.std': RGB_STD + [255.0] * 6,
    })
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert model.backbone.in_channels == 9
    assert model.backbone.num_modalities == 3
    assert model.modality_names == ('rgb', 'fused')


def test_explicit_values_without_modalities_still_work():
    """The DeLiVER model base without `modalities`: RGB-D (the backbone's
    defaults), or whatever the config spells out, as before."""
    cfg = Config.fromfile(MODEL_BASE).model
    with torch.device('meta'):
        model = MODELS.build(cfg)
    assert (model.backbone.in_channels, model.backbone.num_modalities) == \
        (6, 2)
    assert model.modality_names == ('rgb', 'depth')
    assert model.modalities is None
    cfg.backbone.update(in_channels=12, num_modalities=4)
    cfg.modality_names = ('rgb', 'fused')
    cfg.data_preprocessor.update(
        mean=RGB_MEAN + [0.0] * 9, std=RGB_STD + [255.0] * 9)
    with torch.device('meta'):
        model = MODELS.build(cfg)
    assert model.backbone.num_modalities == 4
    assert model.modality_names == ('rgb', 'fused')


def tiny(modalities, **overrides):
    cfg = copy.deepcopy(TINY_SEGMENTOR)
    k = len(modalities)
    cfg['data_preprocessor'].update(
        mean=RGB_MEAN + [0.0] * 3 * (k - 1),
        std=RGB_STD + [255.0] * 3 * (k - 1))
    cfg['modalities'] = modalities
    backbone = overrides.pop('backbone', {})
    cfg['backbone'].update(backbone)
    cfg.update(overrides)
    return MODELS.build(cfg)


@pytest.mark.parametrize('modalities, streams', [
    (('rgb', 'depth'), ('rgb', 'depth')),
    (('rgb', 'thermal'), ('rgb', 'thermal')),
    (('rgb', 'depth', 'event'), ('rgb', 'fused')),
    (('rgb', 'depth', 'event', 'lidar'), ('rgb', 'fused')),
])
def test_segmentor_derives_channels_inputs_and_streams(modalities, streams):
    model = tiny(modalities).eval()
    k = len(modalities)
    assert model.backbone.in_channels == 3 * k
    assert model.backbone.num_modalities == k
    assert model.modality_names == streams
    with torch.no_grad():
        outs = model.branch_logits(torch.randn(1, 3 * k, 32, 32))
    assert len(outs) == 3  # two streams and the ensemble
    # the same values spelled out beside the modalities are accepted
    same = tiny(
        modalities,
        modality_names=streams,
        backbone=dict(in_channels=3 * k, num_modalities=k))
    assert same.modality_names == streams


@pytest.mark.parametrize('overrides, match', [
    (dict(backbone=dict(in_channels=6)),
     r"backbone\.in_channels=6 disagrees with modalities=\['rgb', 'depth', "
     r"'event'\], which give in_channels=9"),
    (dict(backbone=dict(num_modalities=2)),
     r'backbone\.num_modalities=2 disagrees.*num_modalities=3'),
    (dict(modality_names=('rgb', 'depth')),
     r"modality_names=\('rgb', 'depth'\) disagrees.*\('rgb', 'fused'\)"),
])
def test_disagreeing_values_beside_modalities_are_named(overrides, match):
    with pytest.raises(ValueError, match=match):
        tiny(('rgb', 'depth', 'event'), **overrides)


@pytest.mark.parametrize('modalities, match', [
    (('depth', 'rgb'), "first modality must be 'rgb'"),
    (('rgb', ), 'at least one other modality'),
    (('rgb', 'depth', 'depth'), "'depth' is listed more than once"),
    ('rgb', 'must be a list of names'),
])
def test_bad_modalities_are_refused(modalities, match):
    cfg = copy.deepcopy(TINY_SEGMENTOR)
    cfg['modalities'] = modalities
    with pytest.raises(ValueError, match=match):
        MODELS.build(cfg)


@pytest.mark.parametrize('modalities, branches', [
    (None, ('rgb', 'depth')),
    (['rgb', 'event'], ('rgb', 'event')),
    (['rgb', 'depth', 'event', 'lidar'], ('rgb', 'fused')),
])
def test_metric_derives_its_branches(modalities, branches):
    metric = METRICS.build(
        dict(type='MultiBranchIoUMetric', modalities=modalities))
    assert metric.branches == branches
    same = METRICS.build(
        dict(
            type='MultiBranchIoUMetric',
            modalities=modalities,
            branches=branches))
    assert same.branches == branches


def test_metric_refuses_branches_that_disagree():
    with pytest.raises(
            ValueError,
            match=r"MultiBranchIoUMetric: branches=\('rgb', 'depth'\) "
            r"disagrees with modalities=\['rgb', 'depth', 'event'\]"):
        METRICS.build(
            dict(
                type='MultiBranchIoUMetric',
                modalities=['rgb', 'depth', 'event'],
                branches=('rgb', 'depth')))

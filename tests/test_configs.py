"""Every config loads, names registered modules, and builds its model."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import DATASETS, METRICS, MODELS, TRANSFORMS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)
# forward a small input through these (the large ones are only built)
FORWARD = ('mit-b3_3xb2', 'swin-t_3xb2', 'quickstart', 'custom-480x640.py',
           '200e_deliver-', 'mfnet-rgbt')


def _name(path):
    return osp.relpath(path, osp.join(REPO, 'configs'))


def test_zoo_has_one_config_per_published_model():
    zoo = [p for p in CONFIGS if '/geminifusion/' in p]
    # 15 published models + 2 fusion-depth variants (Table 8)
    assert len(zoo) == 17


@pytest.mark.parametrize('path', CONFIGS, ids=_name)
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmseg'
    assert 'geminifusion_mmseg' in cfg.custom_imports['imports']
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key]['dataset']
        assert dataset['type'] in DATASETS
        for step in dataset['pipeline']:
            TRANSFORMS.build(step)
    # mmseg's tools/test.py --tta and --show-dir / --show need these
    assert 'tta_pipeline' in cfg and 'tta_model' in cfg
    assert cfg.default_hooks.visualization.type == 'RGBDVisualizationHook'
    # the Runner gives the top-level one to tta_model, hence to the model
    if 'data_preprocessor' in cfg:
        assert cfg.data_preprocessor == cfg.model.data_preprocessor
    for step in cfg.tta_pipeline:
        TRANSFORMS.build(step)
    num_classes = cfg.model.decode_head.num_classes
    if any(key in path for key in FORWARD):
        model = MODELS.build(cfg.model).eval()
        channels = len(cfg.model.data_preprocessor['mean'])
        with torch.no_grad():
            out = model._forward(torch.randn(1, channels, 64, 96))
        assert out.shape == (1, num_classes, 16, 24)
    else:
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
        assert model.decode_head.conv_seg.out_channels == num_classes


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if 'deliver' in p or 'mfnet' in p], ids=_name)
def test_k_modality_configs_agree_on_the_modalities(path):
    """in_channels, num_modalities, the preprocessor's mean/std and the
    datasets follow the dataset config's `modalities`; one branch name per
    backbone stream, the same in the metric (as built: the model and the
    metric may derive them from `modalities`)."""
    from geminifusion_mmseg.datasets import check_modalities_match
    cfg = Config.fromfile(path)
    modalities = cfg.modalities
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert backbone.num_modalities == len(modalities)
    check_modalities_match(backbone.in_channels, modalities, path)
    for key in ('mean', 'std'):
        check_modalities_match(
            len(cfg.model.data_preprocessor[key]), modalities, path)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert list(cfg[key].dataset.modalities) == list(modalities)
    names = tuple(model.modality_names)
    expected = ('rgb', 'fused') if len(modalities) > 2 else \
        tuple(modalities)
    assert names == expected
    for key in ('val_evaluator', 'test_evaluator'):
        assert METRICS.build(cfg[key]).branches == names

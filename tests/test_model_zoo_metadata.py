"""The model-zoo metadata agrees with the configs and with the docs.

``model-index.yml`` -> ``configs/geminifusion/metafile.yaml`` (OpenMMLab
model-index format) must describe every zoo config, each entry must point at
a config that loads, its metadata must match that config (backbone, dataset,
crop, epochs, batch, drop-path rate), and its mIoU and weights must match the
tables of ``configs/geminifusion/README.md`` and ``README.md``. Where the
paper and the authors' README differ both figures are given, and the
parameter counts are those of the built models (the paper's MiT-B3 figure:
TokenFusion's base with its score predictors plus the fusion layers).
"""
import glob
import os.path as osp
import re

import pytest
import torch
import torch.nn as nn
import yaml
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ZOO_DIR = osp.join(REPO, 'configs', 'geminifusion')
METAFILE = osp.join(ZOO_DIR, 'metafile.yaml')

# metadata name -> (backbone type, arch) in the config
BACKBONES = {
    'MiT-B0': ('GeminiFusionMiT', 'b0'),
    'MiT-B1': ('GeminiFusionMiT', 'b1'),
    'MiT-B2': ('GeminiFusionMiT', 'b2'),
    'MiT-B3': ('GeminiFusionMiT', 'b3'),
    'MiT-B4': ('GeminiFusionMiT', 'b4'),
    'MiT-B5': ('GeminiFusionMiT', 'b5'),
    'Swin-T': ('GeminiFusionSwin', 'tiny'),
    'Swin-S': ('GeminiFusionSwin', 'small'),
    'Swin-L': ('GeminiFusionSwin', 'large'),
    'Swin-L-384': ('GeminiFusionSwin', 'large-384'),
}
# metadata dataset name -> (dataset type, number of classes)
DATASETS = {
    'NYUDv2': ('NYUDv2Dataset', 40),
    'SUN RGB-D': ('SUNRGBDDataset', 37),
    'DeLiVER': ('DeLiVERDataset', 25),
}
PAPER_URL = 'https://arxiv.org/abs/2406.01210'
WEIGHTS_PREFIX = 'https://github.com/JiaDingCN/GeminiFusion/releases/download/'


def _load_yaml(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _models():
    return _load_yaml(METAFILE)['Models']


def _zoo_configs():
    return sorted(
        osp.relpath(p, REPO) for p in glob.glob(osp.join(ZOO_DIR, '*.py')))


def _markdown_tables(path):
    """All pipe tables of a markdown file as lists of {header: cell}."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    tables, block = [], []
    for line in lines + ['']:
        if line.lstrip().startswith('|'):
            block.append(line.strip())
            continue
        if len(block) >= 2 and re.fullmatch(r'\|[\s:|-]+\|', block[1]):
            cells = [_split_row(row) for row in block]
            header = [c.strip() for c in cells[0]]
            tables.append([dict(zip(header, row)) for row in cells[2:]])
        block = []
    return tables


def _split_row(row):
    return [c.strip() for c in row.strip().strip('|').split('|')]


def _config_name(cell):
    """The config stem a table cell links to, or None."""
    m = re.search(r'\]\(([^)]*?)([^/()]+)\.py\)', cell)
    return m.group(2) if m else None


def _link(cell):
    m = re.search(r'\]\(([^)]*)\)', cell)
    return m.group(1) if m else ''


def _rows_by_config(path, column):
    """{config stem: row} over the tables of ``path`` that have ``column``
    (the header naming the linked config)."""
    rows = {}
    for table in _markdown_tables(path):
        for row in table:
            name = _config_name(row.get(column, ''))
            if name is None:
                continue
            assert name not in rows, f'{path}: {name} listed twice'
            rows[name] = row
    return rows


def _number(cell):
    m = re.search(r'\d+(\.\d+)?', cell)
    assert m, f'no number in table cell {cell!r}'
    return float(m.group(0))


def _miou_column(row, prefix):
    keys = [k for k in row if k.startswith(prefix)]
    assert len(keys) == 1, f'expected one column starting with {prefix!r}, ' \
        f'got {list(row)}'
    return row[keys[0]]


def _check_both_figures(cell, model):
    """A table's mIoU cell: the metafile's mIoU first, and the paper's
    where the metafile has a different one."""
    metrics = model['Results']['Metrics']
    assert _number(cell) == pytest.approx(metrics['mIoU']), model['Name']
    if 'mIoU (paper)' in metrics:
        assert metrics['mIoU (paper)'] != metrics['mIoU']
        assert f"paper: {metrics['mIoU (paper)']}" in cell, model['Name']
        assert "authors' README" in cell, model['Name']
    else:
        assert 'paper' not in cell, model['Name']


def _check_params(cell, md):
    """A table's params cell: the metafile's count in M (2 decimals), and
    the paper's figure where the metafile has one."""
    assert cell.split()[0] == f"{md['Parameters'] / 1e6:.2f}", cell
    if 'Paper Parameters' in md:
        assert f"paper: {md['Paper Parameters'].rstrip('M')}" in cell
    else:
        assert 'paper' not in cell


def test_model_index_imports_the_metafile():
    index = _load_yaml(osp.join(REPO, 'model-index.yml'))
    assert index['Import'] == ['configs/geminifusion/metafile.yaml']
    for path in index['Import']:
        assert osp.isfile(osp.join(REPO, path)), path


def test_metafile_structure():
    meta = _load_yaml(METAFILE)
    collections = {c['Name']: c for c in meta['Collections']}
    assert list(collections) == ['GeminiFusion']
    coll = collections['GeminiFusion']
    assert coll['Paper']['URL'] == PAPER_URL
    assert osp.isfile(osp.join(REPO, coll['README']))
    names = [m['Name'] for m in meta['Models']]
    assert len(names) == len(set(names)), 'duplicate model names'
    for model in meta['Models']:
        name = model['Name']
        assert model['In Collection'] in collections, name
        assert model['Results']['Task'] == 'Semantic Segmentation', name
        assert model['Results']['Dataset'] in DATASETS, name
        miou = model['Results']['Metrics']['mIoU']
        assert isinstance(miou, float) and 0 < miou < 100, name
        md = model['Metadata']
        for key in ('Training Data', 'Batch Size', 'Backbone', 'Crop Size',
                    'Epochs', 'Architecture'):
            assert key in md, f'{name}: Metadata lacks {key!r}'
        assert md['Training Data'] == model['Results']['Dataset'], name
        assert md['Backbone'] in BACKBONES, name
        assert md['Architecture'] == [md['Backbone'], 'GeminiFusion'], name
        assert isinstance(md['Parameters'], int), name
        # mim search reads 'Key (x)' as Key with unit x (column 'key(x)'):
        # keep metadata keys plain
        assert not any('(' in key for key in md), name
        assert model['Paper']['URL'] == PAPER_URL, name
        assert model['Paper']['Title'] == coll['Paper']['Title'], name
        assert model['Code'].startswith(
            'https://github.com/JiaDingCN/GeminiFusion/'), name
        weights = model.get('Weights')
        if weights:
            # the DeLiVER branch's files are bare state dicts (.pth)
            suffix = '.pth' if md['Training Data'] == 'DeLiVER' else \
                '.pth.tar'
            assert weights.startswith(WEIGHTS_PREFIX) and \
                weights.endswith(suffix), name


def test_every_zoo_config_has_exactly_one_entry():
    configs = [m['Config'] for m in _models()]
    assert sorted(configs) == _zoo_configs()
    for model in _models():
        assert osp.splitext(osp.basename(model['Config']))[0] == \
            model['Name']


@pytest.mark.parametrize('model', _models(), ids=lambda m: m['Name'])
def test_metadata_matches_config(model):
    path = osp.join(REPO, model['Config'])
    assert osp.isfile(path), path
    cfg = Config.fromfile(path)
    md = model['Metadata']

    backbone_type, arch = BACKBONES[md['Backbone']]
    assert cfg.model.backbone.type == backbone_type
    assert cfg.model.backbone.arch == arch

    dataset_type, num_classes = DATASETS[model['Results']['Dataset']]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.type == dataset_type, key
    assert cfg.model.decode_head.num_classes == num_classes

    h, w = (int(v) for v in md['Crop Size'].split('x'))
    assert tuple(cfg.crop_size) == (h, w)
    assert md['Crop Size'] in model['Name']

    assert cfg.train_cfg.max_epochs == md['Epochs']
    assert f"{md['Epochs']}e" in model['Name']

    # Batch Size is the total: GPUs x images per GPU, as in the name
    m = re.search(r'_(\d+)xb(\d+)-', model['Name'])
    gpus, per_gpu = int(m.group(1)), int(m.group(2))
    assert cfg.train_dataloader.batch_size == per_gpu
    assert md['Batch Size'] == gpus * per_gpu

    if 'Drop Path Rate' in md:
        assert cfg.model.backbone.drop_path_rate == pytest.approx(
            md['Drop Path Rate'])


def test_zoo_readme_table_matches_metafile():
    rows = _rows_by_config(osp.join(ZOO_DIR, 'README.md'), 'config')
    models = {m['Name']: m for m in _models()}
    assert sorted(rows) == sorted(models)
    for name, row in rows.items():
        model = models[name]
        md = model['Metadata']
        cell = _miou_column(row, 'mIoU (published)')
        _check_both_figures(cell, model)
        _check_params(row['Params (M)'], md)
        assert row['Backbone'] == md['Backbone'], name
        assert row['Crop Size'] == md['Crop Size'], name
        gpus, per_gpu = (int(v) for v in row['Batch'].split('x'))
        assert gpus * per_gpu == md['Batch Size'], name
        assert _number(row['dpr']) == pytest.approx(md['Drop Path Rate'])
        assert _link(row['download']) == model.get('Weights', ''), name
        # no re-measured number without a metafile entry for it
        measured = _miou_column(row, 'mIoU (released weights')
        if measured not in ('—', '-', ''):
            assert 'mIoU (released weights)' in model['Results']['Metrics']
        assert osp.isfile(osp.join(ZOO_DIR, _link(row['config']))), name
    _check_dataset_sections(models)


def _check_dataset_sections(models):
    """Each row of the zoo README sits under the heading of its dataset."""
    with open(osp.join(ZOO_DIR, 'README.md'), encoding='utf-8') as f:
        section = None
        for line in f:
            if line.startswith('### '):
                section = line[4:].strip()
            name = _config_name(line) if line.startswith('|') else None
            if name:
                assert section == models[name]['Results']['Dataset'], name


def test_readme_zoo_table_matches_metafile():
    rows = _rows_by_config(osp.join(REPO, 'README.md'), 'config')
    models = {m['Name']: m for m in _models()}
    assert sorted(rows) == sorted(models)
    for name, row in rows.items():
        model = models[name]
        _check_both_figures(_miou_column(row, 'published mIoU'), model)
        _check_params(row['params (M)'], model['Metadata'])
        assert row['dataset'] == model['Results']['Dataset'], name
        # 'Swin-L (224)', 'MiT-B5 (wd 0.05)', 'Swin-L-384, fine-tuned ...'
        backbone = re.split(r'[ ,(]', row['backbone'])[0]
        assert backbone == model['Metadata']['Backbone'], name
        assert _number(row['dpr']) == pytest.approx(
            model['Metadata']['Drop Path Rate']), name
        assert _link(row['config']) == model['Config'], name


@pytest.mark.parametrize('model', _models(), ids=lambda m: m['Name'])
def test_parameter_counts_are_those_of_the_built_models(model):
    """Counted on the model the config builds (on the meta device: no
    memory, no forward)."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import geminifusion_mmseg  # noqa: F401  (registers the models)
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(REPO, model['Config']))
    with torch.device('meta'):
        built = MODELS.build(cfg.model)
    assert sum(p.numel() for p in built.parameters()) == \
        model['Metadata']['Parameters']


def _tokenfusion_score_predictor(dim):
    """One of TokenFusion's ``PredictorLG`` score nets (its
    ``semantic_segmentation/models/mix_transformer.py``), as layers."""
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(),
        nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, dim // 4),
        nn.GELU(), nn.Linear(dim // 4, 2), nn.LogSoftmax(dim=-1))


def test_paper_mit_b3_count_is_tokenfusions_base_plus_fusion():
    """The paper's 75.8M for MiT-B3 = our (and the authors' code's) model
    + TokenFusion's score predictors (one per stage and modality), which
    the GeminiFusion code removed."""
    from geminifusion_mmseg.models.backbones.gemini_mit import MIT_ARCHS
    for model in _models():
        md = model['Metadata']
        if 'Paper Parameters' not in md:
            continue
        assert md['Backbone'] == 'MiT-B3', model['Name']
        predictors = 2 * sum(
            sum(p.numel()
                for p in _tokenfusion_score_predictor(d).parameters())
            for d in MIT_ARCHS['b3']['embed_dims'])
        assert predictors == 1260048
        paper = float(md['Paper Parameters'].rstrip('M'))
        assert round((md['Parameters'] + predictors) / 1e6, 1) == paper
        assert round(md['Parameters'] / 1e6, 1) != paper

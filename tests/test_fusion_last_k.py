"""``fusion_last_k``: GeminiFusion layers only in the last k blocks of the
MiT and Swin backbones, counted over all stages (the paper's Table 8).

k = None (the default) and k = the total number of blocks are the published
model, bit for bit; fewer k drops the fusion layers (and their parameters)
of the earlier blocks; k = 0 is the shared backbone with per-modality norms.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from geminifusion_mmseg.models.backbones import (GeminiFusionMiT,
                                                 GeminiFusionSwin)
from geminifusion_mmseg.models.backbones.base import block_fusion_cfgs
from geminifusion_mmseg.models.layers import GeminiFusion

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIT_ARCH = dict(embed_dims=(16, 32, 40, 64), depths=(2, 1, 2, 1))
SWIN_ARCH = dict(
    embed_dims=16, depths=[2, 2, 2, 2], num_heads=[2, 2, 4, 8], window_size=4)
TOTALS = dict(mit=6, swin=8)  # blocks: 2 + 1 + 2 + 1 and 2 + 2 + 2 + 2

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def build(kind, seed=0, **kwargs):
    torch.manual_seed(seed)
    if kind == 'mit':
        model = GeminiFusionMiT(
            arch=MIT_ARCH, sr_ratios=(4, 2, 1, 1), drop_path_rate=0., **kwargs)
    else:
        model = GeminiFusionSwin(arch=SWIN_ARCH, drop_path_rate=0., **kwargs)
    model.init_weights()
    return model.eval()


def blocks(model):
    return [b for stage in model.layers for b in stage.blocks]


def fusion_of(block):
    return block.attn.fusion if hasattr(block.attn, 'fusion') else \
        block.fusion


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('kind', ['mit', 'swin'])
def test_k_total_is_the_published_model_bit_for_bit(kind):
    default = build(kind)
    full = build(kind, fusion_last_k=TOTALS[kind])
    a, b = default.state_dict(), full.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    x = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        for fa, fb in zip(default(x), full(x)):
            assert torch.equal(fa, fb)
    assert all(isinstance(fusion_of(b), GeminiFusion) for b in blocks(full))


@pytest.mark.parametrize('kind', ['mit', 'swin'])
def test_fusion_only_in_the_last_k_blocks_over_all_stages(kind):
    total = TOTALS[kind]
    for k in range(total + 1):
        model = build(kind, fusion_last_k=k)
        fused = [isinstance(fusion_of(b), GeminiFusion) for b in blocks(model)]
        assert fused == [False] * (total - k) + [True] * k, k
        # blocks without fusion have no fusion parameters at all
        for b in blocks(model)[:total - k]:
            assert not list(fusion_of(b).parameters())


@pytest.mark.parametrize('kind', ['mit', 'swin'])
def test_k0_has_no_fusion_parameters_and_runs(kind):
    model = build(kind, fusion_last_k=0)
    assert not any('fusion' in key for key in model.state_dict())
    assert not any(isinstance(m, GeminiFusion) for m in model.modules())
    # the per-modality norms stay: the two streams still differ
    x = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        outs = model(x)
    assert len(outs) == 4 and outs[0].shape[0] == 2
    assert not torch.equal(outs[-1][0], outs[-1][1])


@pytest.mark.parametrize('kind', ['mit', 'swin'])
def test_parameter_count_falls_with_k_by_one_fusion_layer_per_block(kind):
    total = TOTALS[kind]
    counts = [n_params(build(kind, fusion_last_k=k)) for k in range(total + 1)]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    full = build(kind)
    assert counts[-1] == n_params(full)
    # each step adds exactly the fusion layer of one more block
    per_block = [n_params(fusion_of(b)) for b in blocks(full)]
    for k in range(1, total + 1):
        assert counts[k] - counts[k - 1] == per_block[total - k], k


@pytest.mark.parametrize('kind', ['mit', 'swin'])
def test_full_checkpoint_loads_into_the_full_model_only(kind):
    full_sd = build(kind, seed=1).state_dict()
    model = build(kind, seed=2, fusion_last_k=TOTALS[kind])
    model.load_state_dict(full_sd, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, full_sd[key]), key
    # a lighter model: exactly the dropped fusion layers are left over
    light = build(kind, fusion_last_k=2)
    res = light.load_state_dict(full_sd, strict=False)
    assert not res.missing_keys
    assert res.unexpected_keys and all('fusion' in key
                                       for key in res.unexpected_keys)
    assert len(res.unexpected_keys) == len(full_sd) - len(light.state_dict())


@pytest.mark.parametrize('kind', ['mit', 'swin'])
@pytest.mark.parametrize('k', [-1, 'total + 1', 2.5, True, '4'])
def test_bad_k_is_refused_naming_the_value_and_the_total(kind, k):
    total = TOTALS[kind]
    if k == 'total + 1':
        k = total + 1
    with pytest.raises(ValueError) as err:
        build(kind, fusion_last_k=k)
    msg = str(err.value)
    assert f'fusion_last_k={k!r}' in msg and f'[0, {total}]' in msg
    assert f'{total} blocks' in msg


def test_block_fusion_cfgs_counts_from_the_end():
    cfg = dict(type='GeminiFusion', num_heads=8)
    got = block_fusion_cfgs(cfg, (3, 4, 18, 3), 4, 'B3')
    assert [len(s) for s in got] == [3, 4, 18, 3]
    flat = [c for s in got for c in s]
    assert flat == [None] * 24 + [cfg] * 4
    assert got[2][-1] == cfg and got[2][-2] is None
    # no fusion config: nothing fuses, whatever k
    assert all(
        c is None for s in block_fusion_cfgs(None, (2, 2), 3, 'x') for c in s)


@pytest.mark.parametrize('k, layers', [(4, 4), (10, 10)])
def test_zoo_configs_build_the_table8_models(k, layers):
    path = osp.join(
        REPO, 'configs', 'geminifusion',
        f'geminifusion-last{k}_mit-b3_3xb2-300e_nyudv2-480x640.py')
    cfg = Config.fromfile(path)
    assert cfg.model.backbone.fusion_last_k == k
    assert cfg.model.backbone.arch == 'b3'
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    fusions = [
        isinstance(b.attn.fusion, GeminiFusion) for b in blocks(model.backbone)
    ]
    assert len(fusions) == 28 and fusions[-layers:] == [True] * layers
    assert not any(fusions[:-layers])

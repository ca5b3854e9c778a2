"""Tests of the GeminiFusion Swin backbone (docs/model.md)."""
import re

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

import geminifusion_mmseg  # noqa: F401  (registers the modules)
from geminifusion_mmseg.models.backbones.gemini_swin import (GeminiFusionSwin,
                                                             WindowMSA,
                                                             shift_window_mask,
                                                             window_partition)
from geminifusion_mmseg.testing.literal_swin import LiteralGeminiFusionSwin

# Small config: dims 32, 64, 128, 256 (all divisible by the 8 fusion heads),
# two blocks per stage, so every stage has a shifted block.
SMALL = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 8])
FUSION_NAMES = ('cross_attn_0_to_1', 'cross_attn_1_to_0', 'relation_judger',
                'k_noise', 'v_noise')


def small_swin(**kwargs):
    kwargs.setdefault('window_size', 7)
    return GeminiFusionSwin(arch=dict(SMALL), **kwargs)


def expected_num_params(embed_dims, depths, heads, window):
    """Parameter count derived from docs/model.md, independently."""
    n = 3 * 16 * embed_dims + embed_dims + 2 * 2 * embed_dims  # patch embed
    for i, (depth, nh) in enumerate(zip(depths, heads)):
        C = embed_dims * 2**i
        block = (2 * C + (3 * C * C + 3 * C) + (C * C + C) +
                 (2 * window - 1)**2 * nh + 2 * C + (4 * C * C + 4 * C) +
                 (4 * C * C + C))
        fusion = (2 * (3 * C * C + 3 * C + C * C + C) +
                  (2 * C * C + C + C * C + C) + 2 * 2 * C)
        n += depth * (block + fusion)
        if i < 3:
            n += 4 * C * 2 * C + 2 * 4 * C  # patch merging
        n += 2 * 2 * C  # output norm per modality
    return n


# --------------------------------------------------------------------------
# 1. building and argument checks
@pytest.mark.parametrize('arch, dims, depths, heads, window', [
    ('tiny', 96, [2, 2, 6, 2], [3, 6, 12, 24], 7),
    ('small', 96, [2, 2, 18, 2], [3, 6, 12, 24], 7),
    ('large', 192, [2, 2, 18, 2], [6, 12, 24, 48], 7),
    ('large-384', 192, [2, 2, 18, 2], [6, 12, 24, 48], 12),
])
def test_every_arch_builds(arch, dims, depths, heads, window):
    # the big ones on the meta device: construction only, no memory
    device = 'cpu' if arch == 'tiny' else 'meta'
    with torch.device(device):
        model = MODELS.build(dict(type='GeminiFusionSwin', arch=arch))
    assert isinstance(model, GeminiFusionSwin)
    assert model.window_size == window
    assert model.pretrain_img_size == (384 if arch == 'large-384' else 224)
    assert model.num_features == [dims * 2**i for i in range(4)]
    assert [len(s.blocks) for s in model.layers] == depths
    n = sum(p.numel() for p in model.parameters())
    assert n == expected_num_params(dims, depths, heads, window)
    table = model.layers[3].blocks[0].attn.relative_position_bias_table
    assert table.shape == ((2 * window - 1)**2, heads[3])
    if arch == 'tiny':
        model.init_weights()
        model.eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 6, 64, 96))
        assert [tuple(o.shape) for o in outs] == [(2, 96, 16, 24),
                                                  (2, 192, 8, 12),
                                                  (2, 384, 4, 6),
                                                  (2, 768, 2, 3)]
        assert all(torch.isfinite(o).all() for o in outs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='huge'):
        GeminiFusionSwin(arch='huge')
    with pytest.raises(ValueError, match='in_channels=4'):
        GeminiFusionSwin(arch=dict(SMALL), in_channels=4)
    with pytest.raises(ValueError, match='num_modalities=3'):
        GeminiFusionSwin(arch=dict(SMALL), in_channels=9, num_modalities=3)
    model = small_swin()
    with pytest.raises(ValueError, match=r'\(2, 3, 32, 32\)'):
        model(torch.randn(2, 3, 32, 32))


# --------------------------------------------------------------------------
# 2. shapes and strides
@pytest.mark.parametrize('size', [(100, 130), (45, 250), (7, 9)])
def test_output_shapes(size):
    torch.manual_seed(0)
    model = small_swin().eval()
    H, W = size
    with torch.no_grad():
        outs = model(torch.randn(2, 6, H, W))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        stride = 4 * 2**i
        assert tuple(out.shape) == (4, 32 * 2**i, -(-H // stride),
                                    -(-W // stride))
        assert torch.isfinite(out).all()


def test_out_indices():
    model = small_swin(out_indices=(1, 3)).eval()
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm3')
    with torch.no_grad():
        outs = model(torch.randn(1, 6, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 256]


# --------------------------------------------------------------------------
# 3. which parameters are per modality
def test_per_modality_and_shared_parameters():
    model = small_swin()
    params = dict(model.named_parameters())
    for prefix in ['patch_embed.norm'] + [f'norm{i}' for i in range(4)]:
        for kind in ('weight', 'bias'):
            p0 = params[f'{prefix}.ln_0.{kind}']
            p1 = params[f'{prefix}.ln_1.{kind}']
            assert p0 is not p1
    assert model.patch_embed.norm.eps == 1e-6
    assert all(getattr(model, f'norm{i}').eps == 1e-6 for i in range(4))
    block = model.layers[0].blocks[0]
    assert block.norm1.eps == 1e-5 and block.norm2.eps == 1e-5
    assert model.layers[0].downsample.norm.eps == 1e-5
    # shared layers exist once: no modality-indexed copies of them
    assert 'layers.0.blocks.0.attn.qkv.weight' in params
    for name in params:
        if re.search(r'ln_\d', name):
            assert name.startswith(('patch_embed.norm.', 'norm')), name
        assert '.module.' not in name
    assert not any(n.startswith('layers.') and 'ln_' in n for n in params)
    # each Parameter object is registered once
    assert len({id(p) for p in model.parameters()}) == len(params)
    # the relative position index is a persistent buffer, as released
    assert 'layers.0.blocks.0.attn.relative_position_index' in \
        model.state_dict()


# --------------------------------------------------------------------------
# 4. gradients
def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = small_swin(drop_path_rate=0.1)
    model.init_weights()
    model.train()
    outs = model(torch.randn(2, 6, 61, 83))
    sum((o**2).mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_drop_path_drops_per_row():
    torch.manual_seed(0)
    model = small_swin(drop_path_rate=0.5).train()
    block = model.layers[3].blocks[1]
    x = torch.ones(8, 4, 256)
    y = block.drop_path(x)
    kept = (y != 0).flatten(1).all(1)
    assert ((y == 0).flatten(1).all(1) | kept).all()  # whole rows
    assert block.drop_path.drop_prob == pytest.approx(0.5)
    assert model.layers[0].blocks[0].drop_path.__class__.__name__ == \
        'Identity'


# --------------------------------------------------------------------------
# 5. exactness against the literal published-style backbone
def test_window_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = WindowMSA(16, 2, 5).double()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = torch.randn(3 * 4, 25, 16, dtype=torch.float64)
    mask = shift_window_mask(10, 10, 5, 2, dtype=torch.float64)  # 4 windows
    for m in (None, mask):
        qkv = attn.qkv(x).view(12, 25, 3, 2, 8).permute(2, 0, 3, 1, 4)
        s = qkv[0] * attn.scale @ qkv[1].transpose(-2, -1)
        s = s + attn.relative_position_bias().unsqueeze(0)
        if m is not None:
            s = (s.view(3, 4, 2, 25, 25) + m[None, :, None]).view_as(s)
        ref = (s.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(12, 25, 16)
        ref = attn.proj(ref)
        torch.testing.assert_close(attn(x, m), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('Hp, Wp, ws', [(14, 7, 7), (21, 28, 7), (8, 4, 4)])
def test_shift_window_mask_matches_release_slices(Hp, Wp, ws):
    ss = ws // 2
    ids = torch.zeros(Hp, Wp)
    cnt = 0
    slices = (slice(0, -ws), slice(-ws, -ss), slice(-ss, None))
    for h in slices:
        for w in slices:
            ids[h, w] = cnt
            cnt += 1
    w_ids = window_partition(ids[None, :, :, None], ws)[..., 0]
    expected = torch.where(w_ids[:, :, None] == w_ids[:, None, :], 0., -100.)
    mask = shift_window_mask(Hp, Wp, ws, ss)
    assert mask.shape == ((Hp // ws) * (Wp // ws), ws * ws, ws * ws)
    torch.testing.assert_close(mask, expected, rtol=0, atol=0)


def literal_to_ours(key):
    """Map a released (``encoder.body.``-stripped) key to ours."""
    key = key.replace('.module.', '.')
    return re.sub(
        r'^(layers\.\d+\.blocks\.\d+\.)(' + '|'.join(FUSION_NAMES) + r')\.',
        r'\1fusion.\2.', key)


def test_state_dict_keys_mirror_release():
    literal = LiteralGeminiFusionSwin(32, [2, 2, 2, 2], [2, 4, 8, 8], 7)
    keys = list(literal.state_dict())
    assert 'layers.0.blocks.0.attn.module.qkv.weight' in keys
    assert 'layers.0.blocks.1.cross_attn_0_to_1.in_proj_weight' in keys
    assert 'layers.0.blocks.1.relation_judger.0.fc2.bias' in keys
    assert 'layers.2.downsample.module.reduction.weight' in keys
    assert 'patch_embed.proj.module.weight' in keys
    ours = small_swin().state_dict()
    assert sorted(literal_to_ours(k) for k in keys) == sorted(ours)
    for k, v in literal.state_dict().items():
        assert ours[literal_to_ours(k)].shape == v.shape, k
        if k.endswith('relative_position_index'):
            assert torch.equal(ours[literal_to_ours(k)], v), k


@pytest.mark.parametrize('window', [7, 4])
def test_matches_literal_release(window):
    torch.manual_seed(0)
    literal = LiteralGeminiFusionSwin(32, [2, 2, 2, 2], [2, 4, 8, 8],
                                      window).double().eval()
    with torch.no_grad():
        for name, p in literal.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if p.dim() > 1 else 0.5))
    model = small_swin(window_size=window, drop_path_rate=0.).double().eval()
    state = {literal_to_ours(k): v for k, v in literal.state_dict().items()}
    model.load_state_dict(state, strict=True)

    for H, W in ((61, 83), (100, 130)):
        rgb = torch.randn(2, 3, H, W, dtype=torch.float64)
        depth = torch.randn(2, 3, H, W, dtype=torch.float64)
        with torch.no_grad():
            ref = literal([rgb, depth])
            outs = model(torch.cat([rgb, depth], dim=1))
        for i, out in enumerate(outs):
            for m in range(2):
                r = ref[m][i]
                o = out[2 * m:2 * m + 2]
                assert o.shape == r.shape
                err = (o - r).norm() / r.norm()
                assert err < 1e-10, (H, W, i, m, err.item())


def test_patch_embed_pads_like_swin():
    """Sizes not a multiple of 4 are zero-padded right/bottom."""
    torch.manual_seed(0)
    model = small_swin().double().eval()
    x = torch.randn(1, 6, 61, 83, dtype=torch.float64)
    with torch.no_grad():
        a = model(x)
        b = model(F.pad(x, (0, 1, 0, 3)))
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)

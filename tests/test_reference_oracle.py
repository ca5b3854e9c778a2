"""The literal (published-style) MiT segmenter oracle, checked against
docs/model.md.

docs/model.md lists the keys of a released MiT checkpoint; the oracle must
produce exactly those (names and shapes), run at odd sizes, and write/read the
released ``.pth.tar`` layout under ``weights_only=True``.
"""
import numpy as np
import pytest
import torch

from geminifusion_mmseg.testing.literal_fusion import LiteralGeminiFusion
from geminifusion_mmseg.testing.literal_mit import LiteralMiT, literal_mit
from geminifusion_mmseg.testing.literal_segmenter import (
    LiteralSegmenter, released_state_dict, save_released_checkpoint)
from geminifusion_mmseg.utils.checkpoint import load_external_checkpoint

B0_DIMS = (32, 64, 160, 256)
B0_DEPTHS = (2, 2, 2, 2)
SR = (8, 4, 2, 1)
NUM_CLASSES = 40
EMB = 256


def released_mit_keys(dims,
                      depths,
                      sr_ratios,
                      num_classes,
                      emb=EMB,
                      mlp_ratio=4):
    """The released MiT key listing (docs/model.md), expanded, with the
    shapes it implies."""
    k = {'module.alpha': (2, )}
    e = 'module.encoder.'
    for s in range(1, 5):
        C = dims[s - 1]
        cin = 3 if s == 1 else dims[s - 2]
        ks = 7 if s == 1 else 3
        k[f'{e}patch_embed{s}.proj.module.weight'] = (C, cin, ks, ks)
        k[f'{e}patch_embed{s}.proj.module.bias'] = (C, )
        for i in range(2):
            for p in ('weight', 'bias'):
                k[f'{e}patch_embed{s}.norm.ln_{i}.{p}'] = (C, )
                k[f'{e}norm{s}.ln_{i}.{p}'] = (C, )
        H = mlp_ratio * C
        for j in range(depths[s - 1]):
            b = f'{e}block{s}.{j}.'
            for i in range(2):
                for p in ('weight', 'bias'):
                    k[f'{b}norm1.ln_{i}.{p}'] = (C, )
                    k[f'{b}norm2.ln_{i}.{p}'] = (C, )
            k[f'{b}attn.q.module.weight'] = (C, C)
            k[f'{b}attn.q.module.bias'] = (C, )
            k[f'{b}attn.kv.module.weight'] = (2 * C, C)
            k[f'{b}attn.kv.module.bias'] = (2 * C, )
            k[f'{b}attn.proj.module.weight'] = (C, C)
            k[f'{b}attn.proj.module.bias'] = (C, )
            r = sr_ratios[s - 1]
            if r > 1:
                k[f'{b}attn.sr.module.weight'] = (C, C, r, r)
                k[f'{b}attn.sr.module.bias'] = (C, )
                for i in range(2):
                    for p in ('weight', 'bias'):
                        k[f'{b}attn.norm.ln_{i}.{p}'] = (C, )
            for d in ('0_to_1', '1_to_0'):
                a = f'{b}attn.cross_attn_{d}.'
                k[a + 'in_proj_weight'] = (3 * C, C)
                k[a + 'in_proj_bias'] = (3 * C, )
                k[a + 'out_proj.weight'] = (C, C)
                k[a + 'out_proj.bias'] = (C, )
            k[f'{b}attn.relation_judger.0.fc1.weight'] = (C, 2 * C)
            k[f'{b}attn.relation_judger.0.fc1.bias'] = (C, )
            k[f'{b}attn.relation_judger.0.fc2.weight'] = (C, C)
            k[f'{b}attn.relation_judger.0.fc2.bias'] = (C, )
            k[f'{b}attn.k_noise.weight'] = (2, C)
            k[f'{b}attn.v_noise.weight'] = (2, C)
            k[f'{b}mlp.fc1.module.weight'] = (H, C)
            k[f'{b}mlp.fc1.module.bias'] = (H, )
            k[f'{b}mlp.dwconv.dwconv.weight'] = (H, 1, 3, 3)
            k[f'{b}mlp.dwconv.dwconv.bias'] = (H, )
            k[f'{b}mlp.fc2.module.weight'] = (C, H)
            k[f'{b}mlp.fc2.module.bias'] = (C, )
    d = 'module.decoder.'
    for lvl in range(1, 5):
        k[f'{d}linear_c{lvl}.proj.weight'] = (emb, dims[lvl - 1])
        k[f'{d}linear_c{lvl}.proj.bias'] = (emb, )
    k[f'{d}linear_fuse.conv.weight'] = (emb, 4 * emb, 1, 1)
    for p in ('weight', 'bias', 'running_mean', 'running_var'):
        k[f'{d}linear_fuse.bn.{p}'] = (emb, )
    k[f'{d}linear_fuse.bn.num_batches_tracked'] = ()
    k[f'{d}linear_pred.weight'] = (num_classes, emb, 1, 1)
    k[f'{d}linear_pred.bias'] = (num_classes, )
    return k


def _b0_segmenter(seed=0):
    torch.manual_seed(seed)
    enc = LiteralMiT(B0_DIMS, B0_DEPTHS)
    return LiteralSegmenter(enc, enc.embed_dims, NUM_CLASSES)


@pytest.fixture(scope='module')
def b0():
    return _b0_segmenter().eval()


def test_released_state_dict_matches_the_listing(b0):
    sd = released_state_dict(b0)
    expected = released_mit_keys(B0_DIMS, B0_DEPTHS, SR, NUM_CLASSES)
    missing = sorted(set(expected) - set(sd))
    extra = sorted(set(sd) - set(expected))
    assert not missing and not extra, (missing[:5], extra[:5])
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, (key, tuple(sd[key].shape))
    assert next(iter(sd)) == 'module.alpha'
    assert torch.equal(sd['module.alpha'], torch.ones(2))
    assert not any('score_predictor' in key for key in sd)
    # Stage 4 (sr 1) has no spatial reduction.
    assert not any(
        key.startswith('module.encoder.block4.0.attn.sr') for key in sd)
    # The release's key order inside a block: attention layers, then fusion.
    blk = [key for key in sd if key.startswith('module.encoder.block1.0.')]
    assert blk.index('module.encoder.block1.0.attn.norm.ln_1.bias') < \
        blk.index('module.encoder.block1.0.attn.cross_attn_0_to_1.'
                  'in_proj_weight')
    # LayerNorm eps of every modality norm is 1e-6.
    lns = [
        m for n, m in b0.encoder.named_modules()
        if n.split('.')[-1] in ('ln_0', 'ln_1')
    ]
    assert lns and all(m.eps == 1e-6 for m in lns)


@pytest.mark.parametrize('name,n_blocks', [('mit_b3', 28), ('mit_b5', 52)])
def test_larger_configs_key_count(name, n_blocks):
    """Key sets for the zoo sizes, without building them (shape math only):
    the listing's block count matches the MiT depths (docs/model.md)."""
    from geminifusion_mmseg.testing.literal_mit import MIT_SETTINGS
    cfg = MIT_SETTINGS[name]
    keys = released_mit_keys(cfg['embed_dims'], cfg['depths'], SR, NUM_CLASSES)
    blocks = {
        '.'.join(k.split('.')[2:4])
        for k in keys if k.startswith('module.encoder.block')
    }
    assert len(blocks) == n_blocks


def test_forward_odd_size_three_logits(b0):
    torch.manual_seed(1)
    rgb, depth = torch.randn(2, 3, 61, 83), torch.rand(2, 3, 61, 83) * 4
    with torch.no_grad():
        outs = b0([rgb, depth])
    assert len(outs) == 3
    # 1/4 resolution: the stride-4, kernel-7, padding-3 patch embedding
    h, w = (61 + 6 - 7) // 4 + 1, (83 + 6 - 7) // 4 + 1
    assert (h, w) == (16, 21)
    for o in outs:
        assert o.shape == (2, NUM_CLASSES, h, w)
        assert torch.isfinite(o).all()
    # alpha = ones: ens is the plain average
    torch.testing.assert_close(outs[2], 0.5 * (outs[0] + outs[1]))
    assert not torch.allclose(outs[0], outs[1])
    # per-sample loops: a sample alone gives the same logits
    with torch.no_grad():
        one = b0([rgb[1:], depth[1:]])
    for o, o1 in zip(outs, one):
        torch.testing.assert_close(o[1:], o1, rtol=1e-4, atol=1e-5)


def test_ens_is_detached_and_alpha_only_gets_its_gradient():
    model = _b0_segmenter(seed=2).eval()
    x = [torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)]
    outs = model(x)
    outs[2].sum().backward()
    assert model.alpha.grad is not None
    assert all(p.grad is None for n, p in model.named_parameters()
               if n != 'alpha')


def test_fusion_inside_attention_is_literal_gemini_fusion(b0):
    """The attention's fusion parameters, loaded into a standalone
    LiteralGeminiFusion, give the same function (names line up)."""
    attn = b0.encoder.block2[1].attn
    C = attn.dim
    fusion = LiteralGeminiFusion(C)
    sub = {
        k: v
        for k, v in attn.state_dict().items()
        if k.split('.')[0] in ('cross_attn_0_to_1', 'cross_attn_1_to_0',
                               'relation_judger', 'k_noise', 'v_noise')
    }
    assert set(sub) == set(fusion.state_dict())
    fusion.load_state_dict(sub)
    xs = [torch.randn(2, 5, C), torch.randn(2, 5, C)]
    with torch.no_grad():
        want = fusion(xs)
        got = LiteralGeminiFusion.forward(attn, xs)
    for g, w_ in zip(got, want):
        torch.testing.assert_close(g, w_)


def test_save_released_checkpoint_round_trip(b0, tmp_path):
    path = str(tmp_path / 'mit-b0.pth.tar')
    save_released_checkpoint(
        b0, path, epoch_start=299, best_val=np.float64(0.568))
    ckpt = load_external_checkpoint(path)
    assert set(ckpt) == {'segmenter', 'epoch_start', 'best_val'}
    assert ckpt['epoch_start'] == 299
    assert isinstance(ckpt['best_val'], np.float64)
    assert ckpt['best_val'] == np.float64(0.568)
    sd = released_state_dict(b0)
    assert list(ckpt['segmenter']) == list(sd)
    for key, value in sd.items():
        assert torch.equal(ckpt['segmenter'][key], value), key
    # Loads back (module. stripped) strictly into a fresh oracle.
    fresh = _b0_segmenter(seed=3).eval()
    fresh.load_state_dict({
        k[len('module.'):]: v
        for k, v in ckpt['segmenter'].items()
    })
    x = [torch.randn(1, 3, 40, 40), torch.randn(1, 3, 40, 40)]
    with torch.no_grad():
        for a, b in zip(b0(x), fresh(x)):
            torch.testing.assert_close(a, b)


def test_literal_mit_factory_and_drop_path():
    enc = literal_mit('mit_b0', drop_path_rate=0.1)
    probs = [
        blk.drop_path.module.drop_prob for s in range(1, 5)
        for blk in getattr(enc, f'block{s}')
        if hasattr(blk.drop_path.module, 'drop_prob')
    ]
    assert len(probs) == 7  # the first block has rate 0 (Identity)
    assert probs[-1] == pytest.approx(0.1)

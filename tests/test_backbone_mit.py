"""GeminiFusionMiT: variants, shapes, shared vs per-modality parameters."""
import pytest
import torch
from mmseg.registry import MODELS

from geminifusion_mmseg.models.backbones.gemini_mit import MIT_ARCHS

TINY = dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 1))


def build(**kwargs):
    return MODELS.build(dict(type='GeminiFusionMiT', **kwargs))


@pytest.mark.parametrize('arch', sorted(MIT_ARCHS))
def test_every_arch_builds(arch):
    model = build(arch=arch)
    expected = MIT_ARCHS[arch]
    assert model.embed_dims == expected['embed_dims']
    assert [len(stage.blocks)
            for stage in model.layers] == list(expected['depths'])


def test_b0_shapes_and_strides_at_odd_size():
    model = build(arch='b0').eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 6, 100, 130))
    assert [tuple(o.shape) for o in outs] == [(4, 32, 25, 33), (4, 64, 13, 17),
                                              (4, 160, 7, 9), (4, 256, 4, 5)]


def test_out_indices():
    model = build(arch=TINY, out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 6, 33, 47))
    assert [o.shape[1] for o in outs] == [32, 64]


def test_per_modality_norms_distinct_and_shared_layers_single():
    model = build(arch=TINY)
    params = dict(model.named_parameters())
    per_modality = [
        'layers.0.patch_embed.norm', 'layers.0.blocks.0.norm1',
        'layers.0.blocks.0.norm2', 'layers.0.blocks.0.attn.norm',
        'layers.3.norm'
    ]
    for prefix in per_modality:
        w0, w1 = params[f'{prefix}.ln_0.weight'], params[
            f'{prefix}.ln_1.weight']
        assert w0 is not w1 and w0.data_ptr() != w1.data_ptr()
    # shared layers exist once, with no per-modality copy
    for name in [
            'layers.0.patch_embed.proj.weight',
            'layers.0.blocks.0.attn.q.weight',
            'layers.0.blocks.0.attn.kv.weight',
            'layers.0.blocks.0.attn.sr.weight',
            'layers.1.blocks.1.mlp.dwconv.dwconv.weight',
            'layers.3.blocks.0.mlp.fc2.weight'
    ]:
        assert name in params
        stem = name.rsplit('.', 1)[0]
        assert not any(
            k.startswith(stem + '.ln_') or k.startswith(stem + '.0.')
            for k in params), name
    # the stage-4 attention has no spatial reduction (sr ratio 1)
    assert 'layers.3.blocks.0.attn.sr.weight' not in params


def test_modalities_run_through_shared_weights_as_one_batch():
    """Swapping rgb and depth swaps the outputs when norms are equal."""
    model = build(arch=TINY).eval()
    x = torch.randn(2, 6, 40, 52)
    swapped = torch.cat([x[:, 3:], x[:, :3]], dim=1)
    # make both modalities' norms and fusion directions identical
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, 'ln_0'):
                m.ln_1.load_state_dict(m.ln_0.state_dict())
            if hasattr(m, 'cross_attn_0_to_1'):
                m.cross_attn_1_to_0.load_state_dict(
                    m.cross_attn_0_to_1.state_dict())
                m.k_noise.weight[1] = m.k_noise.weight[0]
                m.v_noise.weight[1] = m.v_noise.weight[0]
        a, b = model(x)[-1], model(swapped)[-1]
    torch.testing.assert_close(a[:2], b[2:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a[2:], b[:2], rtol=1e-4, atol=1e-5)


def test_every_parameter_gets_a_gradient():
    model = build(arch=TINY, drop_path_rate=0.2).train()
    outs = model(torch.randn(2, 6, 37, 45))
    sum(o.square().mean() for o in outs).backward()
    missing = [
        n for n, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert missing == []


def test_drop_path_grows_linearly():
    model = build(arch='b0', drop_path_rate=0.3)
    rates = [
        b.drop_path.drop_prob if hasattr(b.drop_path, 'drop_prob') else 0.0
        for stage in model.layers for b in stage.blocks
    ]
    torch.testing.assert_close(
        torch.tensor(rates), torch.linspace(0, 0.3, 8), rtol=0, atol=1e-6)


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='b9'), "unknown arch 'b9'"),
    (dict(arch='b0', in_channels=4), 'in_channels=4'),
    (dict(arch='b0', num_modalities=1,
          in_channels=3), 'num_modalities must be >= 2'),
    (dict(arch='b0', num_modalities=3,
          in_channels=6), r'in_channels=6, but num_modalities=3 need 9'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(**kwargs)


def test_wrong_input_channels():
    model = build(arch=TINY)
    with pytest.raises(ValueError, match=r'got shape \(1, 3, 32, 32\)'):
        model(torch.randn(1, 3, 32, 32))

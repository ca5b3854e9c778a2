"""The vectorised GeminiFusion layer equals the literal published one."""
import pytest
import torch

from geminifusion_mmseg.models.layers import GeminiFusion
from geminifusion_mmseg.testing.literal_fusion import LiteralGeminiFusion


def _pair(C, heads=8):
    literal = LiteralGeminiFusion(C, heads).double()
    for p in literal.parameters():  # random weights, away from the init
        torch.nn.init.normal_(p, std=0.3)
    ours = GeminiFusion(C, heads).double()
    ours.load_state_dict(literal.state_dict(), strict=True)
    return literal, ours


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('B,N,C,heads', [(1, 1, 8, 8), (2, 7, 32, 8),
                                         (3, 13, 64, 8), (2, 5, 48, 4)])
def test_forward_and_gradients_match_literal(B, N, C, heads):
    literal, ours = _pair(C, heads)
    x0 = torch.randn(B, N, C, dtype=torch.float64)
    x1 = torch.randn(B, N, C, dtype=torch.float64)

    inputs_lit = [x0.clone().requires_grad_(), x1.clone().requires_grad_()]
    y_lit = torch.cat(literal(inputs_lit))
    inputs_ours = torch.cat([x0, x1]).requires_grad_()
    y_ours = ours(inputs_ours)
    assert y_ours.shape == (2 * B, N, C)
    assert _rel(y_ours, y_lit) < 1e-5

    upstream = torch.randn_like(y_lit)
    (y_lit * upstream).sum().backward()
    (y_ours * upstream).sum().backward()
    grad_lit = torch.cat([inputs_lit[0].grad, inputs_lit[1].grad])
    assert _rel(inputs_ours.grad, grad_lit) < 1e-5
    lit_params = dict(literal.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        assert _rel(p.grad, lit_params[name].grad) < 1e-5, name


def test_directions_are_not_mixed_up():
    """Modality 0 is updated by cross_attn_0_to_1 (as released)."""
    literal, ours = _pair(16)
    x = torch.randn(4, 3, 16, dtype=torch.float64)
    before = ours(x)
    with torch.no_grad():
        ours.cross_attn_1_to_0.out_proj.bias.add_(1.0)
    after = ours(x)
    assert torch.equal(before[:2], after[:2])
    assert not torch.allclose(before[2:], after[2:])


def test_parameter_layout_is_the_released_one():
    layer = GeminiFusion(32)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert shapes == {
        'cross_attn_0_to_1.in_proj_weight': (96, 32),
        'cross_attn_0_to_1.in_proj_bias': (96, ),
        'cross_attn_0_to_1.out_proj.weight': (32, 32),
        'cross_attn_0_to_1.out_proj.bias': (32, ),
        'cross_attn_1_to_0.in_proj_weight': (96, 32),
        'cross_attn_1_to_0.in_proj_bias': (96, ),
        'cross_attn_1_to_0.out_proj.weight': (32, 32),
        'cross_attn_1_to_0.out_proj.bias': (32, ),
        'relation_judger.0.fc1.weight': (32, 64),
        'relation_judger.0.fc1.bias': (32, ),
        'relation_judger.0.fc2.weight': (32, 32),
        'relation_judger.0.fc2.bias': (32, ),
        'k_noise.weight': (2, 32),
        'v_noise.weight': (2, 32),
    }


@pytest.mark.parametrize('kwargs,match', [
    (dict(embed_dims=30, num_heads=8), 'divisible'),
    (dict(embed_dims=32, num_modalities=3), 'num_modalities=3'),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GeminiFusion(**kwargs)


def test_odd_batch_is_an_error():
    with pytest.raises(ValueError, match='multiple of'):
        GeminiFusion(16)(torch.randn(3, 4, 16))

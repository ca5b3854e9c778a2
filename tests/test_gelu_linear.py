"""``gelu_linear``: linear(gelu(x)) with the GELU output recomputed in the
backward pass: same values and gradients, less kept for backward."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from geminifusion_mmseg.models.layers import gelu_linear


def _saved_bytes(fn):
    """Bytes of the tensors autograd keeps for the backward of ``fn()``
    (each storage counted once)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


@pytest.mark.parametrize('shape', [(3, 7, 16), (5, 24)])
@pytest.mark.parametrize('bias', [True, False])
def test_values_and_gradients_equal_autograd(shape, bias):
    torch.manual_seed(0)
    linear = nn.Linear(shape[-1], 11, bias=bias).double()
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(*shape[:-1], 11, dtype=torch.float64)

    ref = linear(F.gelu(x))
    ref_grads = torch.autograd.grad((ref * upstream).sum(),
                                    [x, *linear.parameters()])
    out = gelu_linear(x, linear)
    grads = torch.autograd.grad((out * upstream).sum(),
                                [x, *linear.parameters()])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_input_only_and_frozen_weights():
    linear = nn.Linear(8, 4).double().requires_grad_(False)
    x = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    (g, ) = torch.autograd.grad(gelu_linear(x, linear).sum(), [x])
    (r, ) = torch.autograd.grad(linear(F.gelu(x)).sum(), [x])
    torch.testing.assert_close(g, r)


def test_gradcheck():
    linear = nn.Linear(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: gelu_linear(x, _Lin(w, b)),
                                    (x, linear.weight, linear.bias))


class _Lin:
    """A stand-in holding weight and bias tensors (gradcheck needs them as
    inputs)."""

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias


def test_keeps_less_for_backward():
    """Autograd's composition keeps x and gelu(x); ours keeps x only."""
    linear = nn.Linear(64, 16)
    x = torch.randn(256, 64, requires_grad=True)
    x_bytes = x.numel() * 4
    _, ref = _saved_bytes(lambda: linear(F.gelu(x)))
    _, ours = _saved_bytes(lambda: gelu_linear(x, linear))
    assert ref - ours == x_bytes


def test_autocast_bf16_matches_autocast_reference():
    torch.manual_seed(0)
    linear = nn.Linear(32, 8)
    x = torch.randn(10, 32, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ref = linear(F.gelu(x))
    ref_grads = torch.autograd.grad(ref.float().sum(),
                                    [x, *linear.parameters()])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = gelu_linear(x, linear)
    grads = torch.autograd.grad(out.float().sum(), [x, *linear.parameters()])
    assert out.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref)
    for g, r, p in zip(grads, ref_grads, [x, *linear.parameters()]):
        assert g.dtype == p.dtype
        torch.testing.assert_close(g, r, rtol=2e-2, atol=2e-2)


def test_no_grad_path():
    linear = nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(gelu_linear(x, linear), linear(F.gelu(x)))

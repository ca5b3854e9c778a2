"""``linear(gelu(x))`` that keeps only ``x`` for the backward pass."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class _GELULinearFunction(torch.autograd.Function):
    """``F.linear(F.gelu(x), weight, bias)``; the GELU output is recomputed
    in the backward pass instead of being stored.

    Autograd would keep both ``x`` (for the GELU's gradient) and ``gelu(x)``
    (for the weight gradient of the linear layer); recomputing ``gelu(x)``
    costs one element-wise pass and saves one activation of ``x``'s size
    (in a 4x-wide MLP, the largest tensor of the block). Values and
    gradients are the same as autograd's (same kernels).

    Works under autocast: the forward's ``F.linear`` is autocast as usual,
    and the backward computes in the dtype of the incoming gradient,
    returning the weight gradients in the parameters' dtype.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor,
                bias: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.linear(F.gelu(x), weight, bias)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        dtype = grad_out.dtype
        grad_x = grad_w = grad_b = None
        grad_rows = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            act = F.gelu(x).to(dtype)
            grad_w = (grad_rows.t() @ act.reshape(-1, act.shape[-1])).to(
                weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_rows.sum(0).to(weight.dtype)
        if ctx.needs_input_grad[0]:
            grad_act = grad_out @ weight.to(dtype)
            grad_x = torch.ops.aten.gelu_backward(grad_act.to(x.dtype), x)
        return grad_x, grad_w, grad_b


def gelu_linear(x: Tensor, linear: nn.Linear) -> Tensor:
    """``linear(gelu(x))`` (exact, erf GELU) without storing ``gelu(x)``.

    Args:
        x (Tensor): (..., C_in).
        linear (nn.Linear): C_in -> C_out.

    Returns:
        Tensor: (..., C_out).
    """
    if not torch.is_grad_enabled():
        return linear(F.gelu(x))
    return _GELULinearFunction.apply(x, linear.weight, linear.bias)

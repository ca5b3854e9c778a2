"""Bicubic resizing as two matrix products, for exported graphs.

``F.interpolate(mode='bicubic')`` exports to the ONNX ``Resize`` operator
(``mode='cubic'``), which ONNX Runtime's CPU kernel runs slowly: resizing
the (1, 40, 120, 160) logits of an NYUDv2 model to 480x640 takes about
0.7 s on one core, more than the whole MiT-B0 network (docs/benchmarks.md,
"ONNX Runtime"); its bilinear kernel is fast and stays in use. A bicubic
resize is a separable linear map, so it is written here as
``A_h @ x @ A_w^T`` with per-axis interpolation matrices ``A`` (out, in),
which a runtime runs as GEMMs (about 12x faster there). The matrices are
built from the runtime sizes with ordinary tensor operations, so the same
code traces to a static graph (folded to constants) and to a dynamic one.

The matrices reproduce PyTorch's CPU kernel of ``F.interpolate(x, size,
mode='bicubic')`` (the model's own test-time resize), border included: the
source position of output index ``i`` is ``x = (i + 0.5) * in / out - 0.5``
(``align_corners=False``) or ``i * (in - 1) / (out - 1)`` (True); its four
taps ``floor(x) - 1 .. floor(x) + 2`` are clamped into the image (the
border pixel repeated) and weighted by Keys' kernel with ``a = -0.75`` at
the fraction ``x - floor(x)``. Results agree with ``F.interpolate`` to
float32 rounding (the four non-zero terms of each output are summed in
another order).
"""
from typing import Sequence

import torch
from torch import Tensor

__all__ = ['bicubic_matrix', 'bicubic_resize']

_CUBIC_A = -0.75


def _cubic_near(x: Tensor) -> Tensor:
    """Keys' kernel for ``|x| <= 1``."""
    a = _CUBIC_A
    return ((a + 2) * x - (a + 3)) * x * x + 1


def _cubic_far(x: Tensor) -> Tensor:
    """Keys' kernel for ``1 < |x| < 2``."""
    a = _CUBIC_A
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a


def bicubic_matrix(in_size,
                   out_size,
                   align_corners: bool = False,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """The (out_size, in_size) matrix of a 1-D bicubic resize.

    Args:
        in_size (int | SymInt): Input length.
        out_size (int | SymInt): Output length.
        align_corners (bool): As ``F.interpolate``.
        dtype (torch.dtype): Of the matrix.

    Returns:
        Tensor: ``A`` with ``resize(x) = A @ x`` along that axis; row ``i``
        holds the weights of output ``i``'s four taps.
    """
    dst = torch.arange(out_size, dtype=dtype)
    if align_corners:
        src = dst * ((in_size - 1) / torch.sym_max(out_size - 1, 1))
    else:
        src = (dst + 0.5) * (in_size / out_size) - 0.5
    base = src.floor()
    t = src - base
    base = base.long()
    columns = torch.arange(in_size, dtype=base.dtype)
    weights = (_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t),
               _cubic_far(2 - t))
    matrix = None
    for k, weight in enumerate(weights):
        tap = torch.clamp(base + (k - 1), 0, in_size - 1)
        term = (tap[:, None] == columns[None, :]).to(dtype) * weight[:, None]
        matrix = term if matrix is None else matrix + term
    return matrix


def bicubic_resize(x: Tensor,
                   size: Sequence,
                   align_corners: bool = False) -> Tensor:
    """``F.interpolate(x, size, mode='bicubic', align_corners)`` as two
    matrix products.

    Args:
        x (Tensor): (B, C, h, w) float.
        size (Sequence): Output (H, W) (ints or SymInts).
        align_corners (bool): As ``F.interpolate``.

    Returns:
        Tensor: (B, C, H, W), contiguous, ``x``'s dtype.
    """
    h, w = x.shape[-2:]
    rows = bicubic_matrix(h, size[0], align_corners, x.dtype)
    cols = bicubic_matrix(w, size[1], align_corners, x.dtype)
    # columns first: the intermediate (B, C, h, W) is the smaller one when
    # both axes are upsampled by about the same factor
    return torch.matmul(rows, torch.matmul(x, cols.t()))

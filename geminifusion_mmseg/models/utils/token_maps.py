"""Token sequences <-> feature maps, the layout changes around the
backbones' convolutions."""
from typing import Tuple

from torch import Tensor


def tokens_to_map(x: Tensor, hw: Tuple[int, int]) -> Tensor:
    """(B, H*W, C) tokens -> (B, C, H, W), a channels-last view (no copy).

    Exported to ONNX as Reshape + Transpose, which ONNX Runtime folds into
    the following convolution's input reorder.
    """
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


def map_to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C) tokens, a view (no copy).

    Contiguous tokens for a channels-last map (what convolutions return for
    the maps of :func:`tokens_to_map`), strided ones for an NCHW map: the
    same view as ``flatten(2).transpose(1, 2)``. Written as a permute to
    channels-last because ONNX Runtime folds that Transpose into the
    convolution's NCHWc output reorder, which saves a full pass over the
    map in an exported graph (docs/deployment.md).
    """
    return x.permute(0, 2, 3, 1).flatten(1, 2)

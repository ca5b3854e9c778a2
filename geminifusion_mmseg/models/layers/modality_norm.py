"""LayerNorm with its own affine parameters for each modality."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class ModalityLayerNorm(nn.Module):
    """One LayerNorm per modality, applied to a modality-stacked batch.

    The input holds the M modalities stacked along the batch axis (the
    first B rows are modality 0, the next B modality 1, ...). Each
    modality's rows go through ``F.layer_norm`` with that modality's own
    scale and shift, and the results are concatenated. The affine
    parameters live in ``ln_0``, ``ln_1``, ... (one ``nn.LayerNorm`` each, as
    in the released checkpoints), so they are distinct parameters.

    M fused ``layer_norm`` calls (affine inside the kernel) plus one
    concatenation are about twice as fast on CPU, forward and backward, as
    one affine-free ``layer_norm`` over all rows followed by a per-modality
    ``addcmul``, and keep one tensor less for the backward pass (the
    normalised input the ``addcmul`` would save).

    Args:
        num_features (int): Channels C (the last axis).
        num_modalities (int): M. Defaults to 2.
        eps (float): LayerNorm epsilon. Defaults to 1e-6 (GeminiFusion).

    Shape:
        - Input: (M * B, ..., C)
        - Output: same shape.
    """

    def __init__(self,
                 num_features: int,
                 num_modalities: int = 2,
                 eps: float = 1e-6):
        super().__init__()
        self.num_features = num_features
        self.num_modalities = num_modalities
        self.eps = eps
        for i in range(num_modalities):
            self.add_module(f'ln_{i}', nn.LayerNorm(num_features, eps=eps))

    @property
    def norms(self):
        return [getattr(self, f'ln_{i}') for i in range(self.num_modalities)]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.num_modalities != 0:
            raise ValueError(
                f'ModalityLayerNorm: batch {x.shape[0]} is not a multiple of '
                f'num_modalities={self.num_modalities}')
        shape = (self.num_features, )
        return torch.cat([
            F.layer_norm(rows, shape, norm.weight, norm.bias, self.eps)
            for rows, norm in zip(
                x.chunk(self.num_modalities, dim=0), self.norms)
        ])

    def extra_repr(self) -> str:
        return (f'{self.num_features}, num_modalities={self.num_modalities}, '
                f'eps={self.eps}')

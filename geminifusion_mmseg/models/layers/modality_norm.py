"""LayerNorm with its own affine parameters for each modality."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class ModalityLayerNorm(nn.Module):
    """One LayerNorm per modality, applied to a modality-stacked batch.

    The input holds the M modalities stacked along the batch axis (the
    first B rows are modality 0, the next B modality 1, ...). Normalisation
    is computed once for all rows; each modality then gets its own scale and
    shift. The affine parameters live in ``ln_0``, ``ln_1``, ... (one
    ``nn.LayerNorm`` each, as in the released checkpoints), so they are
    distinct parameters.

    Args:
        num_features (int): Channels C (the last axis).
        num_modalities (int): M. Defaults to 2.
        eps (float): LayerNorm epsilon. Defaults to 1e-6 (GeminiFusion).

    Shape:
        - Input: (M * B, ..., C)
        - Output: same shape.
    """

    def __init__(self, num_features: int, num_modalities: int = 2,
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
        M = self.num_modalities
        y = F.layer_norm(x, (self.num_features, ), eps=self.eps)
        shape = (M, -1) + (1, ) * (x.dim() - 2) + (self.num_features, )
        weight = torch.stack([n.weight for n in self.norms]).view(shape)
        bias = torch.stack([n.bias for n in self.norms]).view(shape)
        y = torch.addcmul(bias, y.view((M, -1) + x.shape[1:]), weight)
        return y.view(x.shape)

    def extra_repr(self) -> str:
        return (f'{self.num_features}, num_modalities={self.num_modalities}, '
                f'eps={self.eps}')

"""Turning the stacked multimodal image into a modality-stacked batch."""
from typing import List

import torch
from torch import Tensor


def check_modal_input(x: Tensor, in_channels: int, num_modalities: int,
                      owner: str) -> Tensor:
    """Check a stacked RGB-D batch and move modalities onto the batch axis.

    Args:
        x (Tensor): (B, in_channels, H, W), modalities stacked on channels
            (e.g. rgb 3 + depth 3).
        in_channels (int): Expected channel count.
        num_modalities (int): M.
        owner (str): Name used in the error message.

    Returns:
        Tensor: (M * B, in_channels // M, H, W); rows [0:B] are modality 0.
    """
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(
            f'{owner}: expected a (B, {in_channels}, H, W) input with '
            f'{num_modalities} modalities stacked on the channel axis '
            f'(3 channels each, rgb first), got shape {tuple(x.shape)}. '
            'Check the '
            'loading transform and the data preprocessor mean/std length.')
    return torch.cat(split_modalities(x, num_modalities), dim=0)


def split_modalities(x: Tensor,
                     num_modalities: int,
                     dim: int = 1) -> List[Tensor]:
    """Split (B, M*C, ...) along ``dim`` into M tensors of C channels."""
    return list(x.chunk(num_modalities, dim=dim))

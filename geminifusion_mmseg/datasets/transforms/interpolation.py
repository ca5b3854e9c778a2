"""Resizing images and label maps as the releases' torchvision code does."""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_INTERPOLATIONS = ('bilinear', 'bicubic', 'nearest')


def tensor_resize(img: np.ndarray,
                  size: Tuple[int, int],
                  interpolation: str = 'bilinear',
                  per_modality: bool = False) -> np.ndarray:
    """Resize an image like torchvision's ``resize`` of a float tensor.

    ``torch.nn.functional.interpolate`` in float32 with
    ``align_corners=False`` and no antialiasing -- what the GeminiFusion
    release's ``Resize`` does to its float (0..255) image tensors with the
    torchvision of its time (tensor antialiasing was off by default before
    torchvision 0.17). Unlike OpenCV, downscaling here samples the input
    (no area averaging) and nothing is rounded to the input's integer
    dtype in between.

    Args:
        img (np.ndarray): (H, W) or (H, W, C), any numeric dtype.
        size (tuple[int, int]): Output (h, w).
        interpolation (str): 'bilinear', 'bicubic' or 'nearest'.
        per_modality (bool): Whether to interpolate each group of 3
            channels (one modality) as its own contiguous (1, 3, H, W)
            tensor, as the reference code resizes each modality's
            (3, H, W) tensor, instead of all channels at once in a
            channels-last view. PyTorch's kernels depend on the channel
            count and memory layout in the last float bit, which matters
            when the result is rounded to integers (see ``round_result`` of
            :class:`ResizeShortSideToMultiple`). Needs a multiple of 3
            channels. Defaults to False.

    Returns:
        np.ndarray: float32 (h, w) or (h, w, C).
    """
    if per_modality and img.ndim == 3 and img.shape[2] > 3:
        if img.shape[2] % 3:
            raise ValueError('per_modality needs 3 channels per modality, '
                             f'got {img.shape[2]} channels.')
        return np.concatenate([
            tensor_resize(img[..., c:c + 3], size, interpolation, True)
            for c in range(0, img.shape[2], 3)
        ],
                              axis=2)
    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    if per_modality:
        x = x.contiguous()
    align = None if interpolation == 'nearest' else False
    y = F.interpolate(
        x, size=tuple(size), mode=interpolation, align_corners=align)[0]
    y = y[0] if img.ndim == 2 else y.permute(1, 2, 0)
    return y.contiguous().numpy()


def nearest_resize(seg: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize with PyTorch's ``mode='nearest'`` rule.

    The source index of output pixel ``i`` is
    ``min(floor(i * float32(in / out)), in - 1)`` per axis, computed in
    float32 as ``torch.nn.functional.interpolate`` (and torchvision's
    ``InterpolationMode.NEAREST``) do, so labels resized here match the
    GeminiFusion release pixel for pixel.

    Args:
        seg (np.ndarray): (H, W) or (H, W, C) array.
        size (tuple[int, int]): Output (h, w).

    Returns:
        np.ndarray: The resized array, same dtype.
    """
    out_h, out_w = size
    in_h, in_w = seg.shape[:2]

    def index(n_in: int, n_out: int) -> np.ndarray:
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.floor(np.arange(n_out, dtype=np.float32) * scale)
        return np.minimum(src.astype(np.int64), n_in - 1)

    return seg[index(in_h, out_h)[:, None], index(in_w, out_w)[None, :]]


def release_resize(img: np.ndarray,
                   size: Tuple[int, int],
                   interpolation: str = 'bilinear',
                   round_result: bool = False) -> np.ndarray:
    """One resize step of the releases' image transforms.

    :func:`tensor_resize` (torchvision's resize of a float tensor), or,
    with ``round_result``, of an integer tensor: each modality (3
    channels) interpolated on its own and rounded (half to even), clipped
    to 0..255 after 'bicubic' (see :class:`ResizeShortSideToMultiple`).
    The input is returned as is when it has the size already.

    Args:
        img (np.ndarray): (H, W) or (H, W, C).
        size (tuple[int, int]): Output (h, w).
        interpolation (str): 'bilinear', 'bicubic' or 'nearest'.
        round_result (bool): Round as an integer tensor would be.

    Returns:
        np.ndarray: float32 (h, w) or (h, w, C) (or ``img``).
    """
    if img.shape[:2] == tuple(size):
        return img
    out = tensor_resize(img, size, interpolation, per_modality=round_result)
    if round_result:
        out = np.round(out)
        if interpolation == 'bicubic':
            out = np.clip(out, 0, 255)
    return out

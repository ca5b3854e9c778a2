"""The evaluation resize of the GeminiFusion protocol."""
import math
from typing import Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

# the interpolation functions are also importable from here
from .interpolation import (IMAGE_INTERPOLATIONS, nearest_resize,
                            release_resize, tensor_resize)
from .size_mismatch import paste_unaligned, take_unaligned

__all__ = [
    'ResizeShortSideToMultiple', 'IMAGE_INTERPOLATIONS', 'nearest_resize',
    'release_resize', 'tensor_resize'
]


@TRANSFORMS.register_module()
class ResizeShortSideToMultiple(BaseTransform):
    """Resize for the published evaluation protocol of GeminiFusion.

    The image is resized so that its SHORT side is ``short_side`` (aspect
    kept, sizes rounded with Python's ``round``), then each side is
    stretched up to the next multiple of ``size_divisor``, in two steps as
    the release does: the image (float, every channel) by
    :func:`tensor_resize` (torch bilinear without antialiasing, like the
    release's torchvision tensor resize: SUN RGB-D images, whose short
    side is above 480, are DOWNscaled that way), label maps by
    :func:`nearest_resize`. The
    label is resized the same way and ``ori_shape`` is set to the new size,
    so that mmseg resizes the logits to this size and the metric is
    computed there, as in the release. For NYUDv2 (480x640) with the
    defaults the transform is the identity; for SUN RGB-D's mixed sizes it
    is not (e.g. 427x561 -> 480x640).

    Put it after the loading transforms (image AND label) in the test
    pipeline, instead of mmseg's ``Resize``. Without it (mmseg's default)
    the metric is computed at the original label size.

    A modality stored at another size than RGB (``size_mismatch=
    'stretch'``, e.g. the full-frame depth of the TokenFusion NYUDv2 copy)
    is resized from its own size through the same two steps, as the
    release resizes every key (see
    :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`).

    Required Keys:

    - img
    - gt_seg_map (optional, every key in ``seg_fields``)
    - unaligned_modalities, flip, flip_direction (optional)

    Modified Keys:

    - img
    - img_shape
    - ori_shape (when ``update_ori_shape``)
    - gt_seg_map (and the other keys in ``seg_fields``)

    Added Keys:

    - scale_factor ((w_scale, h_scale) from the input to the output size)

    Args:
        short_side (int): Target short side. Defaults to 480.
        size_divisor (int): Sides are stretched up to a multiple of it.
            Defaults to 32.
        interpolation (str): Interpolation of the image: 'bilinear',
            'bicubic' or 'nearest'. Defaults to 'bilinear'.
        update_ori_shape (bool): Whether to set ``ori_shape`` to the new
            size (score at this size). Defaults to True.
        round_result (bool): Whether to round the image to integers after
            each of the two resize steps (half to even), as torchvision
            does when it resizes an INTEGER tensor (cast to float32,
            interpolate, round, cast back): the DeLiVER / MFNet code line
            resizes the uint8 tensors of ``torchvision.io.read_image``.
            For images loaded from 8- or 16-bit files (integer values);
            bilinear and nearest stay inside the input's range, so the
            rounding alone is the cast back; with 'bicubic' the values are
            also clipped to 0..255 as torchvision does for uint8. Each
            modality (3 channels) is then interpolated on its own, as
            the reference does, so that values at a .5 boundary round the
            same (:func:`tensor_resize` ``per_modality``).
            Defaults to False (float images, as the NYUDv2 / SUN RGB-D
            release).
    """

    def __init__(self,
                 short_side: int = 480,
                 size_divisor: int = 32,
                 interpolation: str = 'bilinear',
                 update_ori_shape: bool = True,
                 round_result: bool = False) -> None:
        if short_side <= 0 or size_divisor <= 0:
            raise ValueError('short_side and size_divisor must be positive, '
                             f'got {short_side}, {size_divisor}.')
        if interpolation not in IMAGE_INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of '
                             f'{IMAGE_INTERPOLATIONS}, got {interpolation!r}.')
        self.short_side = int(short_side)
        self.size_divisor = int(size_divisor)
        self.interpolation = interpolation
        self.update_ori_shape = update_ori_shape
        self.round_result = bool(round_result)

    def target_sizes(self, h: int,
                     w: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """The intermediate and the final (h, w) for an (h, w) input."""
        scale = self.short_side / min(h, w)
        mid = (round(h * scale), round(w * scale))
        final = tuple(
            int(math.ceil(s / self.size_divisor)) * self.size_divisor
            for s in mid)
        return mid, final

    def _resize_img(self, img: np.ndarray, size: Tuple[int,
                                                       int]) -> np.ndarray:
        return release_resize(img, size, self.interpolation, self.round_result)

    def transform(self, results: dict) -> dict:
        """Resize the image and the label maps.

        Args:
            results (dict): Result dict with ``img``.

        Returns:
            dict: The resized results.
        """
        img = results['img']
        h, w = img.shape[:2]
        mid, final = self.target_sizes(h, w)
        unaligned = take_unaligned(results, self.__class__.__name__)
        for size in (mid, final):
            img = self._resize_img(img, size)
        img = paste_unaligned(img, unaligned, (mid, final), self._resize_img)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['scale_factor'] = (final[1] / w, final[0] / h)
        if self.update_ori_shape:
            results['ori_shape'] = img.shape[:2]
        for key in results.get('seg_fields', []):
            seg = results[key]
            for size in (mid, final):
                if seg.shape[:2] != tuple(size):
                    seg = nearest_resize(seg, size)
            results[key] = seg
        return results

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        repr_str += f'(short_side={self.short_side}, '
        repr_str += f'size_divisor={self.size_divisor}, '
        repr_str += f"interpolation='{self.interpolation}', "
        repr_str += f'update_ori_shape={self.update_ori_shape}'
        if self.round_result:
            repr_str += ', round_result=True'
        repr_str += ')'
        return repr_str

"""The training rescale-and-crop of the GeminiFusion release."""
import random
from typing import Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .interpolation import nearest_resize, release_resize
from .size_mismatch import paste_unaligned, take_unaligned


@TRANSFORMS.register_module()
class RandomRescaleCrop(BaseTransform):
    """Random rescale, random crop, pad: the release's training geometry.

    What ``RandomResizedCrop`` of the GeminiFusion release
    (``utils/augmentations_mm.py``; the same code in its DeLiVER branch and
    in CMNeXt) does, step by step. Not torchvision's / mmpretrain's
    ``RandomResizedCrop``, which crops a random area and aspect ratio and
    resizes the crop: here the whole image is rescaled (aspect kept) and
    then cropped. With ``(tH, tW) = crop_size`` and an (H, W) image:

    1. ``ratio = random.random() * (max - min) + min`` from Python's
       ``random`` module, as the release (mmengine seeds it in
       ``set_random_seed`` and in each dataloader worker, so a run with
       ``randomness=dict(seed=...)`` is reproducible);
    2. ``scale = (int(tH * ratio), int(tW * 4 * ratio))``,
       ``s = min(max(scale) / max(H, W), min(scale) / min(H, W))`` and the
       new size ``(nH, nW) = (int(H * s + 0.5), int(W * s + 0.5))``: the
       short side becomes about ``tH * ratio`` unless the long side would
       pass ``4 * tW * ratio``;
    3. the image resized to (nH, nW) by torch bilinear (``align_corners=
       False``, no antialiasing) on the float channels, as the release's
       torchvision resize of its float tensors
       (:func:`~.interpolation.release_resize`); label maps by PyTorch's
       nearest rule (:func:`~.interpolation.nearest_resize`); a modality
       stored at another size than RGB (``size_mismatch='stretch'``) from
       its own size, flipped first as mmseg's ``RandomFlip`` recorded (see
       :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`);
    4. ``y1 = random.randint(0, margin_h + 1)`` with
       ``margin_h = max(nH - tH, 0)``, then ``x1`` likewise. The release's
       upper bound is one past the last full window (``randint`` includes
       it), so with probability ``1 / (margin + 2)`` per axis the window
       starts one row / column too far and the crop is one row / column
       short -- also when the image is smaller than the crop (``y1`` may
       be 1). Reproduced as is;
    5. the crop ``[y1:y1 + tH, x1:x1 + tW]`` (shorter at the bottom /
       right edge), padded at the bottom / right to ``crop_size`` with
       ``img_pad_val`` (raw values, before normalisation: RGB becomes
       ``-mean / std``, depth 0, as in the release) and ``seg_pad_val``
       for the label maps.

    Put it where the release has it: after colour jitter, ``RandomFlip``
    and blur; it replaces mmseg's ``RandomResize`` + ``RandomCrop`` +
    ``MultiModalPad`` (whose resize is OpenCV's and whose crop window differs).

    Required Keys:

    - img (np.ndarray, (H, W, C))
    - gt_seg_map (optional, every key in ``seg_fields``)
    - unaligned_modalities, flip, flip_direction (optional)

    Modified Keys:

    - img ((tH, tW, C) float32)
    - img_shape
    - gt_seg_map (and the other keys in ``seg_fields``)

    Added Keys:

    - scale_factor ((w_scale, h_scale) of the rescale)
    - crop_bbox ((y1, y2, x1, x2) in the rescaled image, y2 / x2 clipped
      to it)
    - pad_shape

    Args:
        crop_size (tuple[int, int]): (tH, tW) of the output.
        ratio_range (tuple[float, float]): (min, max) of ``ratio``; the
            release's ``scale``. Defaults to (0.5, 2.0).
        img_pad_val (float): Image padding value. Defaults to 0.
        seg_pad_val (int): Label padding value (the release's
            ``seg_fill``). Defaults to 255.
        round_result (bool): Round the resized image to integers (per
            modality), as torchvision resizes INTEGER tensors (the DeLiVER
            code line's uint8 images); see
            :class:`ResizeShortSideToMultiple`. Defaults to False (float
            images, the NYUDv2 / SUN RGB-D release).
    """

    def __init__(self,
                 crop_size: Sequence[int],
                 ratio_range: Sequence[float] = (0.5, 2.0),
                 img_pad_val: float = 0.,
                 seg_pad_val: int = 255,
                 round_result: bool = False) -> None:
        if len(crop_size) != 2 or min(crop_size) <= 0:
            raise ValueError('RandomRescaleCrop: crop_size must be (h, w) '
                             f'with positive sides, got {crop_size!r}.')
        if len(ratio_range) != 2 or not 0 < ratio_range[0] <= ratio_range[1]:
            raise ValueError(
                'RandomRescaleCrop: ratio_range must be (min, max) with '
                f'0 < min <= max, got {ratio_range!r}.')
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.img_pad_val = img_pad_val
        self.seg_pad_val = seg_pad_val
        self.round_result = bool(round_result)

    def rescaled_size(self, h: int, w: int, ratio: float) -> Tuple[int, int]:
        """The (nH, nW) of an (h, w) image for a drawn ``ratio``."""
        th, tw = self.crop_size
        scale = int(th * ratio), int(tw * 4 * ratio)
        factor = min(max(scale) / max(h, w), min(scale) / min(h, w))
        return int(h * factor + 0.5), int(w * factor + 0.5)

    def _resize_img(self, img: np.ndarray, size: Tuple[int,
                                                       int]) -> np.ndarray:
        return release_resize(img, size, 'bilinear', self.round_result)

    @staticmethod
    def _crop_pad(x: np.ndarray, y1: int, x1: int, size: Tuple[int, int],
                  pad_val) -> np.ndarray:
        th, tw = size
        crop = x[y1:y1 + th, x1:x1 + tw]
        if crop.shape[:2] == (th, tw):
            return np.ascontiguousarray(crop)
        out = np.full((th, tw) + x.shape[2:], pad_val, dtype=x.dtype)
        out[:crop.shape[0], :crop.shape[1]] = crop
        return out

    def transform(self, results: dict) -> dict:
        """Rescale, crop and pad the image and the label maps.

        Args:
            results (dict): Result dict with ``img``.

        Returns:
            dict: The results, ``img`` of ``crop_size``.
        """
        img = results['img']
        h, w = img.shape[:2]
        lo, hi = self.ratio_range
        ratio = random.random() * (hi - lo) + lo
        size = self.rescaled_size(h, w, ratio)
        unaligned = take_unaligned(results, self.__class__.__name__)
        img = self._resize_img(img, size)
        img = paste_unaligned(img, unaligned, (size, ), self._resize_img)
        th, tw = self.crop_size
        y1 = random.randint(0, max(size[0] - th, 0) + 1)
        x1 = random.randint(0, max(size[1] - tw, 0) + 1)
        results['img'] = self._crop_pad(
            img.astype(np.float32, copy=False), y1, x1, self.crop_size,
            self.img_pad_val)
        for key in results.get('seg_fields', []):
            seg = results[key]
            if seg.shape[:2] != size:
                seg = nearest_resize(seg, size)
            results[key] = self._crop_pad(seg, y1, x1, self.crop_size,
                                          self.seg_pad_val)
        results['img_shape'] = self.crop_size
        results['pad_shape'] = self.crop_size
        results['scale_factor'] = (size[1] / w, size[0] / h)
        results['crop_bbox'] = (y1, min(y1 + th,
                                        size[0]), x1, min(x1 + tw, size[1]))
        return results

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        repr_str += f'(crop_size={self.crop_size}, '
        repr_str += f'ratio_range={self.ratio_range}, '
        repr_str += f'img_pad_val={self.img_pad_val}, '
        repr_str += f'seg_pad_val={self.seg_pad_val}'
        if self.round_result:
            repr_str += ', round_result=True'
        return repr_str + ')'

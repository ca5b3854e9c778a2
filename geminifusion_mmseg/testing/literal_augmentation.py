"""The release's training geometry and TokenFusion's depth crop, literally
(test oracles).

* ``utils/augmentations_mm.py`` of the GeminiFusion release (NYUDv2 / SUN
  RGB-D code line): :class:`RandomHorizontalFlip` and
  :class:`RandomResizedCrop`, applied by ``main.py`` (after ``ToTensor``
  and ``RandomColorJitter``, with ``RandomGaussianBlur`` in between) to the
  sample dict ``{'rgb': (3, h, w), 'depth': (3, H, W), 'mask': (h, w)}``
  -- each key at ITS OWN size: the released NYUDv2 copy has depth larger
  than RGB and mask;
* ``utils/transforms.py`` (TokenFusion / CEN, Light-Weight-RefineNet):
  :class:`CropAlignToMask`, the centre crop of every input to the mask's
  size, on (H, W, C) arrays.

Written as the release's code reads. torchvision is not a dependency here:
``TF.resize`` is :func:`.literal_protocol.tv_resize` (the tensor resize of
the release's torchvision: no antialiasing), ``TF.hflip`` flips the last
axis, ``TF.pad(img, [left, top, right, bottom], fill)`` is a constant pad.
The random draws come from Python's ``random`` module, as in the release.
:class:`RandomResizedCrop` also records its window in ``last`` (for the
tests); nothing else is added. A test oracle, never used by the plugin.
"""
import random
from typing import List, Tuple, Union

import torch
import torch.nn.functional as F

from .literal_protocol import tv_resize


def hflip(img: torch.Tensor) -> torch.Tensor:
    """``TF.hflip`` of a tensor: the last axis reversed."""
    return img.flip(-1)


def pad(img: torch.Tensor, padding: List[int], fill=0) -> torch.Tensor:
    """``TF.pad(img, [left, top, right, bottom], fill)`` of a tensor
    (constant mode)."""
    left, top, right, bottom = padding
    return F.pad(img, (left, right, top, bottom), mode='constant', value=fill)


class RandomHorizontalFlip:
    """``augmentations_mm.RandomHorizontalFlip``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: dict) -> dict:
        if random.random() < self.p:
            for k, v in sample.items():
                sample[k] = hflip(v)
            return sample
        return sample


class RandomResizedCrop:
    """``augmentations_mm.RandomResizedCrop``."""

    def __init__(self,
                 size: Union[int, Tuple[int], List[int]],
                 scale: Tuple[float, float] = (0.5, 2.0),
                 seg_fill: int = 0) -> None:
        self.size = size
        self.scale = scale
        self.seg_fill = seg_fill
        self.last = None

    def __call__(self, sample: dict) -> dict:
        H, W = sample['rgb'].shape[1:]
        tH, tW = self.size

        # get the scale
        ratio = random.random() * (self.scale[1] -
                                   self.scale[0]) + self.scale[0]
        scale = int(tH * ratio), int(tW * 4 * ratio)
        # scale the image
        scale_factor = min(max(scale) / max(H, W), min(scale) / min(H, W))
        nH, nW = int(H * scale_factor + 0.5), int(W * scale_factor + 0.5)
        for k, v in sample.items():
            if k == 'mask':
                sample[k] = tv_resize(v.unsqueeze(0), (nH, nW),
                                      'nearest').squeeze(0)
            else:
                sample[k] = tv_resize(v, (nH, nW), 'bilinear')

        # random crop
        margin_h = max(sample['rgb'].shape[1] - tH, 0)
        margin_w = max(sample['rgb'].shape[2] - tW, 0)
        y1 = random.randint(0, margin_h + 1)
        x1 = random.randint(0, margin_w + 1)
        y2 = y1 + tH
        x2 = x1 + tW
        for k, v in sample.items():
            if len(v.shape) == 3:
                sample[k] = v[:, y1:y2, x1:x2]
            else:
                sample[k] = v[y1:y2, x1:x2]

        # pad the image
        if sample['rgb'].shape[1:] != self.size:
            padding = [
                0,
                0,
                tW - sample['rgb'].shape[2],
                tH - sample['rgb'].shape[1],
            ]
            for k, v in sample.items():
                if k == 'mask':
                    sample[k] = pad(v, padding, fill=self.seg_fill)
                else:
                    sample[k] = pad(v, padding, fill=0)

        self.last = dict(ratio=ratio, size=(nH, nW), y1=y1, x1=x1)
        return sample


class CropAlignToMask:
    """``utils/transforms.CropAlignToMask``: every input (H, W, C) array
    of ``sample['inputs']`` cropped to the mask's size."""

    def __call__(self, sample: dict) -> dict:
        mask_h, mask_w = sample['mask'].shape[:2]
        for key in sample['inputs']:
            sample[key] = self.transform_input(sample[key], mask_h, mask_w)
        return sample

    def transform_input(self, input, mask_h, mask_w):
        input_h, input_w = input.shape[:2]
        if (input_h, input_w) == (mask_h, mask_w):
            return input
        h, w = (input_h - mask_h) // 2, (input_w - mask_w) // 2
        del_h, del_w = (input_h - mask_h) % 2, (input_w - mask_w) % 2
        input = input[h:input_h - h - del_h, w:input_w - w - del_w]
        assert input.shape[:2] == (mask_h, mask_w)
        return input

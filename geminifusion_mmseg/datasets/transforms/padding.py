"""Padding of images with more than 4 channels."""
import numbers

import numpy as np
from mmcv.transforms import Pad
from mmseg.registry import TRANSFORMS

_NP_MODES = dict(
    constant='constant', edge='edge', reflect='reflect', symmetric='symmetric')


@TRANSFORMS.register_module(name=['MultiModalPad', 'RGBDPad'])
class MultiModalPad(Pad):
    """mmcv's ``Pad`` for images with any number of channels.

    Registered as ``MultiModalPad`` and, for configs of earlier versions,
    ``RGBDPad`` (the same class).

    mmcv's ``Pad`` pads with ``cv2.copyMakeBorder``, which refuses a pad
    value for more than 4 channels, so it fails on the 6-channel RGB-D
    image. This subclass pads the image with numpy (same placement: bottom
    and right; same modes) and keeps everything else of ``Pad`` (label
    padding with ``pad_val['seg']``, ``pad_shape`` ...).

    Use it when padding must happen on raw values, before normalisation:
    the GeminiFusion release pads its training crops with 0 before
    normalising (RGB -> ``-mean / std``, depth -> 0), whereas
    ``SegDataPreProcessor`` pads after normalisation (everything -> 0).

    Required Keys:

    - img
    - gt_seg_map (optional)

    Modified Keys:

    - img
    - gt_seg_map
    - img_shape

    Added Keys:

    - pad_shape
    - pad_fixed_size
    - pad_size_divisor

    Args:
        size (tuple, optional): Fixed padding size (w, h).
        size_divisor (int, optional): The divisor of the padded size.
        pad_to_square (bool): Whether to pad to a square.
        pad_val (Number | dict): ``dict(img=..., seg=...)``; ``img`` may be
            a number or one value per channel. Defaults to
            ``dict(img=0, seg=255)``.
        padding_mode (str): 'constant', 'edge', 'reflect' or 'symmetric'
            (as ``mmcv.impad``). Defaults to 'constant'.
    """

    def _pad_img(self, results: dict) -> None:
        img = results['img']
        h, w = img.shape[:2]
        size = (h, w)
        if self.pad_to_square:
            size = (max(h, w), ) * 2
        if self.size_divisor is not None:
            size = tuple(
                int(np.ceil(s / self.size_divisor)) * self.size_divisor
                for s in size)
        elif self.size is not None:
            size = (self.size[1], self.size[0])
        pad_h, pad_w = max(size[0] - h, 0), max(size[1] - w, 0)
        pad_width = ((0, pad_h), (0, pad_w)) + ((0, 0), ) * (img.ndim - 2)
        pad_val = self.pad_val.get('img', 0)
        if self.padding_mode != 'constant':
            padded = np.pad(img, pad_width, mode=_NP_MODES[self.padding_mode])
        elif isinstance(pad_val, numbers.Number):
            padded = np.pad(img, pad_width, constant_values=pad_val)
        else:
            pad_val = np.asarray(pad_val, dtype=img.dtype)
            if img.ndim != 3 or pad_val.shape != (img.shape[2], ):
                raise ValueError(
                    f'MultiModalPad: pad_val {tuple(pad_val)} does not match '
                    f'the {img.shape[-1]} channels of the image.')
            padded = np.empty((h + pad_h, w + pad_w, img.shape[2]),
                              dtype=img.dtype)
            padded[...] = pad_val
            padded[:h, :w] = img
        results['img'] = padded
        results['pad_shape'] = padded.shape
        results['pad_fixed_size'] = self.size
        results['pad_size_divisor'] = self.size_divisor
        results['img_shape'] = padded.shape[:2]


#: The earlier name of :class:`MultiModalPad` (the same class).
RGBDPad = MultiModalPad

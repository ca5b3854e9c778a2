"""The DeLiVER / MFNet readers and the validation transform, literally.

What the GeminiFusion DeLiVER branch (built on CMNeXt) does to produce one
validation sample, step by step as its code reads:

* ``semseg/datasets/deliver.py`` ``DELIVER``: the sorted
  ``glob(root/img/*/<split>/*/*.png)``, kept when ``case in path``; the
  partners by ``str.replace`` (``/img`` -> ``/hha`` and ``_rgb`` ->
  ``_depth``, ...); ``io.read_image(rgb)[:3]``; the other modalities by
  ``_open_img`` (4 channels -> the first 3, 1 channel -> repeated);
  events resized to the RGB size with ``TF.resize(..., NEAREST)``; the
  label ``io.read_image(lbl)[0]``, ``label[label == 255] = 0``,
  ``label -= 1`` (uint8).
* ``semseg/datasets/mfnet.py`` ``MFNet`` (branch version): names from
  ``train.txt`` / ``test.txt`` (first space-separated token);
  ``rgb/<name>.png`` ``[:3]``; ``ther/<name>.png`` by ``_open_img``
  (4 channels -> the 4th repeated, 1 channel -> repeated); the label
  ``io.read_image(lbl)[0]`` as is.
* ``semseg/augmentations_mm.py`` ``get_val_augmentation(size)``:
  ``Resize`` (short side to ``size[0]`` with ``round``, then each side up
  to a multiple of 32; every key, images bilinear, the mask nearest, on the
  INTEGER tensors, i.e. rounded back), then ``Normalize`` (``img`` / 255 +
  ImageNet mean/std, the others / 255).
* ``__getitem__``: ``[sample[k] for k in modals]`` and the label as int64.

torchvision is not a dependency here: :func:`read_image` is
``torchvision.io.read_image`` (channels first, values and bit depth as
stored; 16-bit PNGs as the torchvision versions that read them) written
with Pillow, and :func:`tv_resize` is ``TF.resize`` on a tensor
(:mod:`.literal_protocol`). A test oracle, never used by the plugin.
"""
import glob
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from .literal_protocol import IMAGENET_MEAN, IMAGENET_STD, tv_resize

DELIVER_CASES = [
    'cloud', 'fog', 'night', 'rain', 'sun', 'motionblur', 'overexposure',
    'underexposure', 'lidarjitter', 'eventlowres'
]


def read_image(path: str) -> torch.Tensor:
    """``torchvision.io.read_image(path)``: (C, H, W), dtype as stored
    (16-bit as int32 here: torch lacks uint16 arithmetic)."""
    arr = np.array(Image.open(path))
    if arr.dtype == np.uint16 or arr.dtype == np.int32:
        arr = arr.astype(np.int32)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _open_img_deliver(file: str) -> torch.Tensor:
    img = read_image(file)
    C, H, W = img.shape
    if C == 4:
        img = img[:3, ...]
    if C == 1:
        img = img.repeat(3, 1, 1)
    return img


def _open_img_mfnet(file: str) -> torch.Tensor:
    img = read_image(file)
    C, H, W = img.shape
    if C == 4:
        img = img[3:, ...].repeat(3, 1, 1)
        img = img[:3, ...]
    if C == 1:
        img = img.repeat(3, 1, 1)
    return img


def deliver_files(root: str,
                  split: str,
                  case: Optional[str] = None) -> List[str]:
    """``DELIVER.__init__``'s file list."""
    files = sorted(
        glob.glob(os.path.join(*[root, 'img', '*', split, '*', '*.png'])))
    if case is not None:
        assert case in DELIVER_CASES, 'Case name not available.'
        files = [f for f in files if case in f]
    return files


def deliver_sample(rgb: str, modals: Sequence[str]) -> Dict[str, torch.Tensor]:
    """``DELIVER.__getitem__`` before its transform (keys as the release:
    'img', 'depth', 'lidar', 'event', 'mask')."""
    x1 = rgb.replace('/img', '/hha').replace('_rgb', '_depth')
    x2 = rgb.replace('/img', '/lidar').replace('_rgb', '_lidar')
    x3 = rgb.replace('/img', '/event').replace('_rgb', '_event')
    lbl_path = rgb.replace('/img', '/semantic').replace('_rgb', '_semantic')
    sample = {}
    sample['img'] = read_image(rgb)[:3, ...]
    H, W = sample['img'].shape[1:]
    if 'depth' in modals:
        sample['depth'] = _open_img_deliver(x1)
    if 'lidar' in modals:
        sample['lidar'] = _open_img_deliver(x2)
    if 'event' in modals:
        eimg = _open_img_deliver(x3)
        sample['event'] = tv_resize(eimg, (H, W), 'nearest')
    label = read_image(lbl_path)[0, ...].unsqueeze(0)
    label[label == 255] = 0
    label -= 1
    sample['mask'] = label
    return sample


def mfnet_names(root: str, split: str) -> List[str]:
    """``MFNet._get_file_names``."""
    source = os.path.join(root, 'test.txt') if split == 'val' else \
        os.path.join(root, 'train.txt')
    file_names = []
    with open(source) as f:
        files = f.readlines()
    for item in files:
        file_name = item.strip()
        if ' ' in file_name:
            file_name = file_name.split(' ')[0]
        file_names.append(file_name)
    return file_names


def mfnet_sample(root: str, item_name: str,
                 modals: Sequence[str]) -> Dict[str, torch.Tensor]:
    """``MFNet.__getitem__`` (branch version) before its transform."""
    rgb = os.path.join(*[root, 'rgb', item_name + '.png'])
    x1 = os.path.join(*[root, 'ther', item_name + '.png'])
    lbl_path = os.path.join(*[root, 'labels', item_name + '.png'])
    sample = {}
    sample['img'] = read_image(rgb)[:3, ...]
    if 'thermal' in modals:
        sample['thermal'] = _open_img_mfnet(x1)
    label = read_image(lbl_path)[0, ...].unsqueeze(0)
    sample['mask'] = label
    return sample


def val_resize(sample: dict, size: Tuple[int, int]) -> dict:
    """``augmentations_mm.Resize(size)``."""
    H, W = sample['img'].shape[1:]
    scale_factor = size[0] / min(H, W)
    nH, nW = round(H * scale_factor), round(W * scale_factor)
    for k, v in sample.items():
        mode = 'nearest' if k == 'mask' else 'bilinear'
        sample[k] = tv_resize(v, (nH, nW), mode)
    alignH, alignW = int(math.ceil(nH / 32)) * 32, int(math.ceil(nW / 32)) * 32
    for k, v in sample.items():
        mode = 'nearest' if k == 'mask' else 'bilinear'
        sample[k] = tv_resize(v, (alignH, alignW), mode)
    return sample


def normalize(sample: dict) -> dict:
    """``augmentations_mm.Normalize``."""
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    for k, v in sample.items():
        if k == 'mask':
            continue
        elif k == 'img':
            sample[k] = sample[k].float()
            sample[k] /= 255
            sample[k] = (sample[k] - mean) / std
        else:
            sample[k] = sample[k].float()
            sample[k] /= 255
    return sample


def val_item(
        sample: dict, modals: Sequence[str],
        size: Tuple[int,
                    int]) -> Tuple[dict, List[torch.Tensor], torch.Tensor]:
    """The val transform and ``__getitem__``'s output.

    Returns:
        tuple: (the resized sample BEFORE normalisation, integer tensors;
        the list of normalised inputs in ``modals`` order; the int64
        label).
    """
    sample = val_resize(sample, size)
    raw = {k: v.clone() for k, v in sample.items()}
    sample = normalize(sample)
    label = sample.pop('mask')
    label = torch.from_numpy(label.squeeze().numpy()).long()
    return raw, [sample[k] for k in modals], label

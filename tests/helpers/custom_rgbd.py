"""A user's own RGB-D captures: ``rgb/``, ``depth/``, ``label/`` folders.

The layout of docs/custom_dataset.md, before any list file exists. The
content follows :mod:`tests.helpers.synthetic_rgbd` (depth tied to the
class: ``label_to_depth``; RGB = ``class_color``), so alignment can be
checked after loading.
"""
import os
import os.path as osp
from typing import Iterable, Tuple

import cv2
import numpy as np

from .synthetic_rgbd import block_labels, class_color, label_to_depth

__all__ = ['write_capture', 'make_captures']


def write_capture(root: str,
                  stem: str,
                  rgb: bool = True,
                  depth: bool = True,
                  label: bool = True,
                  rgb_ext: str = '.jpg',
                  size: Tuple[int, int] = (8, 12),
                  num_classes: int = 5,
                  seed: int = 0) -> None:
    """Write the files of one capture; any modality can be left out.

    ``rgb/{stem}{rgb_ext}`` (RGB), ``depth/{stem}.png`` (16-bit mm),
    ``label/{stem}.png`` (0..num_classes-1, no ignore).
    """
    rng = np.random.default_rng(seed)
    labels = block_labels(size, num_classes, rng, block=4, ignore_ratio=0.)
    files = []
    if rgb:
        files.append((osp.join('rgb', stem + rgb_ext),
                      cv2.cvtColor(class_color(labels), cv2.COLOR_RGB2BGR)))
    if depth:
        files.append((osp.join('depth',
                               stem + '.png'), label_to_depth(labels, 16)))
    if label:
        files.append((osp.join('label', stem + '.png'), labels))
    for rel, image in files:
        path = osp.join(str(root), rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        if not cv2.imwrite(path, image):
            raise OSError(f'could not write {path}')


def make_captures(root,
                  stems: Iterable[str],
                  size: Tuple[int, int] = (8, 12),
                  num_classes: int = 5) -> str:
    """Complete captures for every stem (seeded by position)."""
    root = str(root)
    for i, stem in enumerate(stems):
        write_capture(root, stem, size=size, num_classes=num_classes, seed=i)
    return root

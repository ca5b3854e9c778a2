"""Small synthetic DeLiVER and MFNet datasets in their real folder layouts.

Every sample is a block pattern of class ids (:func:`block_labels`); the
other modalities are derived from it, so alignment can be checked, and the
files cover the awkward cases the readers must handle:

* :func:`make_deliver`: ``img|hha|event|lidar|semantic/<condition>/<split>/
  <sequence>/<id>_<tag>_front.png``; odd sizes; the depth of the first
  sample of each split is a 16-bit single-channel PNG, of the others an
  8-bit 3-channel image with different channels (HHA-like); LiDAR of every
  other sample a 4-channel PNG (RGBA); event maps grey, and at HALF the RGB
  resolution in the ``eventlowres`` sequences; one label file per split
  stored as a 3-channel image (class id in the red channel); stored labels
  0 (void), 1..25, 255.
* :func:`make_mfnet`: ``rgb|ther|labels/<name>.png``, ``train.txt`` /
  ``test.txt`` with ``<name> <extra tokens>`` lines; some samples are
  4-channel RGB-T PNGs in both ``rgb/`` and ``ther/`` (thermal = 4th
  channel), others RGB + grey thermal.
"""
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .synthetic_rgbd import IGNORE, block_labels, class_color, write_list

__all__ = ['DELIVER_SEQUENCES', 'make_deliver', 'make_mfnet']

#: (condition, sequence) pairs written per split; sensor-failure cases are
#: in the sequence name, one in the file name (see make_deliver).
DELIVER_SEQUENCES = (('cloud', 'MAP_1_point1'), ('night', 'MAP_2_point7'),
                     ('rain', 'MAP_3_point2_eventlowres'),
                     ('fog', 'MAP_4_point5_lidarjitter'))


def _write(path: str, image: np.ndarray, order: str = 'none') -> None:
    """Write with OpenCV; ``order`` 'rgb' / 'rgba' converts from RGB(A)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    if order == 'rgb':
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif order == 'rgba':
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    if not cv2.imwrite(path, image):
        raise OSError(f'could not write {path}')


def _noise(rng, shape, lo=-8, hi=9):
    return rng.integers(lo, hi, size=shape)


def make_deliver(root: str,
                 splits: Sequence[str] = ('train', 'val', 'test'),
                 size: Tuple[int, int] = (37, 53),
                 block: int = 6,
                 seed: int = 0) -> str:
    """A tiny DeLiVER: one sample per (condition, sequence) per split.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    for split in splits:
        for k, (cond, seq) in enumerate(DELIVER_SEQUENCES):
            # one file name carries a case tag, as a case may be named there
            stem = f'{k:06d}' + ('_overexposure' if k == 1 else '')

            def path(folder, tag, stem=stem, cond=cond, seq=seq):
                return osp.join(root, folder, cond, split, seq,
                                f'{stem}_{tag}_front.png')

            labels = block_labels(size, 25, rng, block=block)
            # stored: 0 = void (our 255), c -> c + 1; some 255 (also void)
            stored = np.where(labels == IGNORE, 0, labels + 1).astype(np.uint8)
            stored[rng.random(size) < 0.02] = 255
            rgb = np.clip(
                class_color(labels).astype(np.int64) +
                _noise(rng, size + (3, )), 0, 255).astype(np.uint8)
            _write(path('img', 'rgb'), rgb, 'rgb')
            if k == 0:  # 16-bit single-channel depth
                depth = (labels.astype(np.int64) * 1000 + 7 +
                         _noise(rng, size, 0, 300)).astype(np.uint16)
                _write(path('hha', 'depth'), depth)
            else:  # 8-bit 3-channel encoding with different channels
                d = (labels.astype(np.int64) * 9) % 256
                hha = np.stack([d, 255 - d, (d * 3 + 11) % 256], axis=-1)
                _write(path('hha', 'depth'), hha.astype(np.uint8), 'rgb')
            lidar = np.stack([(labels.astype(np.int64) * 5 + c * 40) % 256
                              for c in range(4)],
                             axis=-1).astype(np.uint8)
            if k % 2 == 0:  # a 4-channel PNG
                _write(path('lidar', 'lidar'), lidar, 'rgba')
            else:
                _write(path('lidar', 'lidar'), lidar[..., :3], 'rgb')
            event = ((labels.astype(np.int64) * 13) % 256).astype(np.uint8)
            event = np.where(rng.random(size) < 0.3, 0, event)
            if 'eventlowres' in seq:  # half resolution (odd -> rounded)
                event = cv2.resize(
                    event, ((w + 1) // 2, (h + 1) // 2),
                    interpolation=cv2.INTER_NEAREST)
            _write(path('event', 'event'), event.astype(np.uint8))
            if k == 2:  # a colour label file: class id in the red channel
                green = (stored.astype(np.int64) * 7 % 256).astype(np.uint8)
                lab3 = np.stack(
                    [stored, green, np.full_like(stored, 200)], axis=-1)
                _write(path('semantic', 'semantic'), lab3, 'rgb')
            else:
                _write(path('semantic', 'semantic'), stored)
    return root


def make_mfnet(root: str,
               num_train: int = 4,
               num_test: int = 3,
               size: Tuple[int, int] = (35, 47),
               block: int = 6,
               seed: int = 0) -> str:
    """A tiny MFNet in the layout of the GeminiFusion DeLiVER branch.

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    names: Dict[str, List[str]] = dict(train=[], test=[])
    for i in range(num_train + num_test):
        split = 'train' if i < num_train else 'test'
        name = f'{i:05d}{"D" if i % 2 else "N"}'
        labels = block_labels(size, 9, rng, block=block)
        stored = labels.copy()  # 0..8 as classes, 255 ignore
        rgb = np.clip(
            class_color(labels).astype(np.int64) + _noise(rng, size + (3, )),
            0, 255).astype(np.uint8)
        thermal = ((labels.astype(np.int64) * 23 + 5) % 256).astype(np.uint8)
        if i % 2 == 0:  # the original MFNet RGB-T 4-channel PNG, both dirs
            rgbt = np.concatenate([rgb, thermal[..., None]], axis=-1)
            _write(osp.join(root, 'rgb', name + '.png'), rgbt, 'rgba')
            _write(osp.join(root, 'ther', name + '.png'), rgbt, 'rgba')
        else:
            _write(osp.join(root, 'rgb', name + '.png'), rgb, 'rgb')
            _write(osp.join(root, 'ther', name + '.png'), thermal)
        _write(osp.join(root, 'labels', name + '.png'), stored)
        names[split].append(name)
    write_list(
        osp.join(root, 'train.txt'), [
            f'{n} extra tokens' if j == 0 else n
            for j, n in enumerate(names['train'])
        ] + [''])
    write_list(osp.join(root, 'test.txt'), names['test'])
    return root

"""A small synthetic RGB-D dataset that needs both modalities.

Generated deterministically on first use, in the NYUDv2 TokenFusion folder
layout (``rgb/``, ``depth/`` 16-bit millimetres, ``masks/``, ``train.txt``,
``val.txt``), so :class:`NYUDv2Dataset`'s reading code is what reads it.

Each image shows a wall and a floor with rectangles on them:

* ``near box`` / ``far box``: the same colours and textures, drawn from the
  same distribution; only their distance differs (about 1 m vs 2.5 m in
  front of a wall at 4 m). RGB alone cannot tell them apart.
* ``striped poster`` / ``dotted poster``: flat on the wall (the wall's
  depth); only their texture differs. Depth alone cannot tell them from the
  wall or from each other.

So an RGB-only model confuses the boxes, a depth-only one misses the
posters, and a fused model can get every class.
"""
import json
import logging
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from .nyudv2 import NYUDv2Dataset

QUICKSTART_CLASSES = ('wall', 'floor', 'near box', 'far box', 'striped poster',
                      'dotted poster')
QUICKSTART_PALETTE = [[120, 120, 120], [140, 100, 60], [230, 60, 60],
                      [60, 60, 230], [240, 200, 40], [40, 200, 120]]
WALL, FLOOR, NEAR_BOX, FAR_BOX, STRIPED, DOTTED = range(6)
_MARKER = '.quickstart_complete'


def _texture(rng: np.random.Generator, h: int, w: int, kind: str,
             base: np.ndarray) -> np.ndarray:
    """(h, w, 3) float texture of ``kind`` around colour ``base``."""
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 'stripes':
        period = rng.integers(4, 7)
        pattern = ((xx + yy) // period % 2)[..., None] * 90.0 - 45.0
    elif kind == 'dots':
        period = rng.integers(5, 8)
        dots = ((xx % period) < 2) & ((yy % period) < 2)
        pattern = dots[..., None] * 110.0 - 20.0
    else:  # smooth noise
        pattern = rng.normal(0, 12, (h, w, 1))
    return base[None, None, :] + pattern


def render_sample(
        rng: np.random.Generator,
        size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic scene.

    Returns:
        tuple: rgb (H, W, 3) uint8 RGB, depth (H, W) uint16 millimetres,
        label (H, W) uint8 class indices.
    """
    h, w = size
    horizon = int(h * rng.uniform(0.6, 0.75))
    label = np.full((h, w), WALL, np.uint8)
    label[horizon:] = FLOOR
    wall_colour = rng.uniform(90, 200, 3)
    rgb = _texture(rng, h, w, 'noise', wall_colour)
    rgb[horizon:] = _texture(rng, h - horizon, w, 'noise',
                             rng.uniform(60, 150, 3))
    depth = np.full((h, w), 4000.0)
    depth[horizon:] = np.linspace(4000, 1500, h - horizon)[:, None]

    # posters: flat on the wall, so at the wall's depth
    for _ in range(rng.integers(1, 3)):
        cls = STRIPED if rng.random() < 0.5 else DOTTED
        ph, pw = rng.integers(h // 6, h // 3), rng.integers(w // 8, w // 4)
        y, x = rng.integers(0, max(horizon - ph, 1)), rng.integers(0, w - pw)
        base = rng.uniform(60, 200, 3)
        rgb[y:y + ph,
            x:x + pw] = _texture(rng, ph, pw,
                                 'stripes' if cls == STRIPED else 'dots', base)
        label[y:y + ph, x:x + pw] = cls

    # boxes: identical appearance distribution, different distance
    for _ in range(rng.integers(1, 4)):
        cls = NEAR_BOX if rng.random() < 0.5 else FAR_BOX
        bh, bw = rng.integers(h // 5, h // 2), rng.integers(w // 8, w // 3)
        y = rng.integers(h // 8, h - bh)
        x = rng.integers(0, w - bw)
        rgb[y:y + bh, x:x + bw] = _texture(rng, bh, bw, 'noise',
                                           rng.uniform(40, 220, 3))
        depth[y:y + bh,
              x:x + bw] = (1000.0 if cls == NEAR_BOX else 2500.0) + rng.normal(
                  0, 60)
        label[y:y + bh, x:x + bw] = cls

    depth += rng.normal(0, 15, depth.shape)  # sensor noise
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return rgb, np.clip(depth, 0, 65535).astype(np.uint16), label


def generate_quickstart_dataset(root: str,
                                num_train: int = 160,
                                num_val: int = 40,
                                size: Tuple[int, int] = (96, 128),
                                seed: int = 0) -> str:
    """Write the dataset to ``root`` (NYUDv2 TokenFusion layout).

    The same arguments always give the same files. The dataset is written
    to a temporary folder and moved into place when complete, so an
    interrupted or concurrent generation never leaves a partial dataset;
    a complete dataset is kept, and a folder holding anything else is
    refused (see :func:`generate_atomically`).

    Returns:
        str: ``root``.
    """

    def write(tmp: str) -> None:
        for sub in ('rgb', 'depth', 'masks'):
            os.makedirs(osp.join(tmp, sub))
        rng = np.random.default_rng(seed)
        lines = []
        for i in range(num_train + num_val):
            rgb, depth, label = render_sample(rng, size)
            name = f'{i:06d}.png'
            cv2.imwrite(osp.join(tmp, 'rgb', name), rgb[..., ::-1])
            cv2.imwrite(osp.join(tmp, 'depth', name), depth)
            cv2.imwrite(osp.join(tmp, 'masks', name), label)
            lines.append(f'rgb/{name}\tmasks/{name}\tdepth/{name}')
        write_splits(tmp, lines, num_train)

    return generate_atomically(
        root, write, f'{num_train} + {num_val} RGB-D samples',
        dict(num_train=num_train, num_val=num_val, size=list(size), seed=seed))


def write_splits(root: str, lines: Sequence[str], num_train: int) -> None:
    """``train.txt`` (the first ``num_train`` lines) and ``val.txt`` (the
    rest) in ``root``."""
    for split, part in (('train', lines[:num_train]), ('val',
                                                       lines[num_train:])):
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(part) + '\n')


def generate_atomically(root: str,
                        write: Callable[[str], None],
                        what: str,
                        params: Optional[dict] = None) -> str:
    """Generate a dataset into ``root`` unless it is already complete.

    ``write(tmp)`` fills a temporary folder next to ``root``; a marker file
    (``.quickstart_complete``, holding ``params``) is added and the folder
    is moved into place, so an interrupted or concurrent generation never
    leaves a partial dataset. Nothing that the generator did not write is
    ever deleted or overwritten:

    * a complete dataset (with the marker) is kept as it is; if it was
      generated with other ``params`` a warning names both;
    * a missing or empty ``root`` is filled;
    * any other ``root`` (a folder with files but no marker, a file, the
      current folder or one above it) is refused with an error naming it,
      before anything is generated.

    Args:
        root (str): The dataset folder.
        write (callable): Writes the dataset into the folder it is given.
        what (str): What was generated, for the log.
        params (dict, optional): The generation arguments, recorded in the
            marker (JSON).

    Returns:
        str: ``root``.

    Raises:
        FileExistsError: ``root`` holds files the generator did not write,
            or is a file.
        ValueError: ``root`` is the current folder or one above it.
    """
    if _is_complete(root, params):
        return root
    target = _checked_target(root)
    parent = osp.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.quickstart_', dir=parent)
    try:
        write(tmp)
        with open(osp.join(tmp, _MARKER), 'w') as f:
            json.dump(params or {}, f, sort_keys=True)
        if _is_complete(root, params):  # another process won
            return root
        _checked_target(root)  # nothing appeared there meanwhile
        if osp.isdir(target):
            os.rmdir(target)  # empty (checked); fails if not
        os.replace(tmp, target)
        print_log(f'quickstart: generated {what} in {root}', logger='current')
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _is_complete(root: str, params: Optional[dict]) -> bool:
    """Whether ``root`` holds a complete dataset (its marker); warns if it
    was generated with other ``params`` than these."""
    marker = osp.join(root, _MARKER)
    if not osp.isfile(marker):
        return False
    try:
        with open(marker) as f:
            recorded = json.load(f)
    except ValueError:  # an empty marker of an earlier version
        recorded = None
    if recorded and params is not None and recorded != params:
        print_log(
            f'quickstart: {root} holds a dataset generated with {recorded}, '
            f'not the requested {params}; it is used as it is. Delete the '
            'folder (or choose another data_root) to generate the '
            'requested one.',
            logger='current',
            level=logging.WARNING)
    return True


def _checked_target(root: str) -> str:
    """The folder to move a new dataset to (``root``, links resolved), or
    an error if ``root`` may not be replaced (see
    :func:`generate_atomically`)."""
    target = osp.realpath(root)
    cwd = osp.realpath(os.getcwd())
    if target == cwd or cwd.startswith(target.rstrip(osp.sep) + osp.sep):
        raise ValueError(
            f'quickstart: data_root {root!r} is the current folder ({cwd}) '
            'or a folder above it; refusing to generate the synthetic '
            'dataset there. Give it a folder of its own, e.g. '
            "data_root='data/quickstart_rgbd'.")
    if osp.lexists(target) and not osp.isdir(target):
        raise FileExistsError(
            f'quickstart: data_root {root} is a file, not a folder; refusing '
            'to replace it. Give the dataset a new or empty folder.')
    if osp.isdir(target):
        found = sorted(os.listdir(target))
        if found:
            shown = ', '.join(found[:5]) + (' ...' if len(found) > 5 else '')
            raise FileExistsError(
                f'quickstart: data_root {root} holds files that the '
                f'quickstart generator did not write (no {_MARKER} marker): '
                f'{shown}. Refusing to replace them. Point data_root at a '
                'new or empty folder (the synthetic dataset is generated '
                'there) or at a complete quickstart dataset.')
    return target


@DATASETS.register_module()
class QuickstartRGBDDataset(NYUDv2Dataset):
    """The synthetic quickstart dataset, generated on first use.

    Reads exactly like :class:`NYUDv2Dataset` (TokenFusion layout); if
    ``data_root`` holds no complete dataset yet, it is generated there first
    (see :func:`generate_quickstart_dataset`).

    Args:
        data_root (str): Where the dataset lives (or is generated).
        generate_cfg (dict): Arguments of
            :func:`generate_quickstart_dataset` (num_train, num_val, size,
            seed).
        **kwargs: :class:`NYUDv2Dataset` arguments.
    """
    METAINFO = dict(classes=QUICKSTART_CLASSES, palette=QUICKSTART_PALETTE)

    def __init__(self, data_root: str, generate_cfg: dict = dict(), **kwargs):
        generate_quickstart_dataset(data_root, **generate_cfg)
        super().__init__(data_root=data_root, **kwargs)

"""A small synthetic RGB + depth + thermal dataset that needs all three.

The three-sensor variant of :mod:`.quickstart`, generated deterministically
on first use into its own folder (default ``data/quickstart_rgbdt``; the
RGB-D quickstart data are not touched). Layout, one file per sensor:

.. code-block:: none

    quickstart_rgbdt
    ├── rgb/<name>.png       RGB, 8 bit
    ├── depth/<name>.png     depth, 16 bit, millimetres
    ├── thermal/<name>.png   thermal, 8 bit grey (scene temperature)
    ├── masks/<name>.png     class indices 0..7
    ├── train.txt            one <name> per line
    └── val.txt

Each image shows a wall and a floor with rectangles on them, as the RGB-D
quickstart, plus a third pair of box classes:

* ``near box`` / ``far box``: the same colour and texture distribution,
  room temperature; only their distance differs (1 m vs 2.5 m).
* ``striped poster`` / ``dotted poster``: flat on the wall (the wall's
  depth), room temperature; only their texture differs.
* ``warm box`` / ``cold box``: the same colour and texture distribution as
  the other boxes, both at 1.75 m; only their temperature differs (well
  above / below the room's). RGB and depth cannot tell them apart.

So an RGB-D model confuses the warm and cold boxes, a thermal-only model
the near/far boxes and the posters (all at room temperature), and only a
model that reads all three sensors can get every class.
"""
import os
import os.path as osp
from typing import Sequence, Tuple

import cv2
import numpy as np
from mmseg.registry import DATASETS

from .multimodal_folder import MultiModalFolderDataset
from .quickstart import (QUICKSTART_CLASSES, QUICKSTART_PALETTE, _texture,
                         generate_atomically, write_splits)

RGBDT_CLASSES = QUICKSTART_CLASSES + ('warm box', 'cold box')
RGBDT_PALETTE = QUICKSTART_PALETTE + [[250, 130, 20], [20, 200, 240]]
WALL, FLOOR, NEAR_BOX, FAR_BOX, STRIPED, DOTTED, WARM_BOX, COLD_BOX = range(8)
BOX_CLASSES = (NEAR_BOX, FAR_BOX, WARM_BOX, COLD_BOX)
#: Distance (mm) of each box class: the warm and cold boxes share one.
BOX_DEPTH_MM = {
    NEAR_BOX: 1000.0,
    FAR_BOX: 2500.0,
    WARM_BOX: 1750.0,
    COLD_BOX: 1750.0
}
#: Temperature offset range (grey levels) of each box class from the room.
BOX_THERMAL_OFFSET = {
    NEAR_BOX: (-8.0, 8.0),
    FAR_BOX: (-8.0, 8.0),
    WARM_BOX: (45.0, 75.0),
    COLD_BOX: (-75.0, -45.0)
}
_SUBDIRS = ('rgb', 'depth', 'thermal', 'masks')


def render_sample_rgbdt(
    rng: np.random.Generator, size: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic scene seen by three aligned sensors.

    Box colours and textures are drawn from one distribution for all four
    box classes; the warm and cold boxes share their distance; everything
    but the warm and cold boxes is at room temperature (the room's
    temperature varies per image, the boxes' offsets per box).

    Args:
        rng (np.random.Generator): The random source.
        size (tuple[int, int]): (H, W).

    Returns:
        tuple: rgb (H, W, 3) uint8 RGB, depth (H, W) uint16 millimetres,
        thermal (H, W) uint8, label (H, W) uint8 class indices 0..7.
    """
    h, w = size
    horizon = int(h * rng.uniform(0.6, 0.75))
    label = np.full((h, w), WALL, np.uint8)
    label[horizon:] = FLOOR
    rgb = _texture(rng, h, w, 'noise', rng.uniform(90, 200, 3))
    rgb[horizon:] = _texture(rng, h - horizon, w, 'noise',
                             rng.uniform(60, 150, 3))
    depth = np.full((h, w), 4000.0)
    depth[horizon:] = np.linspace(4000, 1500, h - horizon)[:, None]
    room = rng.uniform(90, 130)  # room temperature, grey levels
    thermal = np.full((h, w), room)
    # the floor a little cooler towards the camera
    thermal[horizon:] -= np.linspace(0, rng.uniform(0, 10), h - horizon)[:,
                                                                         None]

    # posters: flat on the wall, at the wall's depth and temperature
    for _ in range(rng.integers(1, 3)):
        cls = STRIPED if rng.random() < 0.5 else DOTTED
        ph, pw = rng.integers(h // 6, h // 3), rng.integers(w // 8, w // 4)
        y, x = rng.integers(0, max(horizon - ph, 1)), rng.integers(0, w - pw)
        rgb[y:y + ph,
            x:x + pw] = _texture(rng, ph, pw,
                                 'stripes' if cls == STRIPED else 'dots',
                                 rng.uniform(60, 200, 3))
        label[y:y + ph, x:x + pw] = cls

    # boxes: one appearance distribution; the class sets depth and heat
    for _ in range(rng.integers(1, 5)):
        cls = BOX_CLASSES[rng.integers(0, len(BOX_CLASSES))]
        bh, bw = rng.integers(h // 5, h // 2), rng.integers(w // 8, w // 3)
        y = rng.integers(h // 8, h - bh)
        x = rng.integers(0, w - bw)
        rgb[y:y + bh, x:x + bw] = _texture(rng, bh, bw, 'noise',
                                           rng.uniform(40, 220, 3))
        depth[y:y + bh, x:x + bw] = BOX_DEPTH_MM[cls] + rng.normal(0, 60)
        thermal[y:y + bh,
                x:x + bw] = room + rng.uniform(*BOX_THERMAL_OFFSET[cls])
        label[y:y + bh, x:x + bw] = cls

    depth += rng.normal(0, 15, depth.shape)  # sensor noise
    # a thermal camera: soft edges and noise
    thermal = cv2.GaussianBlur(thermal, (3, 3), 0.8)
    thermal += rng.normal(0, 4, thermal.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return (rgb, np.clip(depth, 0, 65535).astype(np.uint16),
            np.clip(np.round(thermal), 0, 255).astype(np.uint8), label)


def generate_quickstart_rgbdt_dataset(root: str,
                                      num_train: int = 160,
                                      num_val: int = 40,
                                      size: Tuple[int, int] = (96, 128),
                                      seed: int = 0) -> str:
    """Write the RGB-D-T dataset to ``root`` (layout in the module doc).

    The same arguments always give the same files. The dataset is written
    to a temporary folder next to ``root`` and moved into place when
    complete (marked by a ``.quickstart_complete`` file), so an interrupted
    or concurrent generation never leaves a partial dataset; an existing
    complete dataset is kept as it is, and a folder holding anything else
    is refused (see :func:`~.quickstart.generate_atomically`).

    Args:
        root (str): The dataset folder.
        num_train (int): Training samples. Defaults to 160.
        num_val (int): Validation samples. Defaults to 40.
        size (tuple[int, int]): Image size (H, W). Defaults to (96, 128).
        seed (int): Seed of the generator. Defaults to 0.

    Returns:
        str: ``root``.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError('generate_quickstart_rgbdt_dataset: num_train and '
                         f'num_val must be >= 1, got {num_train}, {num_val}.')

    def write(tmp: str) -> None:
        for sub in _SUBDIRS:
            os.makedirs(osp.join(tmp, sub))
        rng = np.random.default_rng(seed)
        names = []
        for i in range(num_train + num_val):
            rgb, depth, thermal, label = render_sample_rgbdt(rng, size)
            name = f'{i:06d}'
            for sub, arr in zip(_SUBDIRS,
                                (rgb[..., ::-1], depth, thermal, label)):
                cv2.imwrite(osp.join(tmp, sub, name + '.png'), arr)
            names.append(name)
        write_splits(tmp, names, num_train)

    return generate_atomically(
        root, write, f'{num_train} + {num_val} RGB-D-T samples',
        dict(num_train=num_train, num_val=num_val, size=list(size), seed=seed))


@DATASETS.register_module()
class QuickstartRGBDTDataset(MultiModalFolderDataset):
    """The synthetic RGB + depth + thermal quickstart, generated on first use.

    If ``data_root`` holds no complete dataset yet it is generated there
    first (:func:`generate_quickstart_rgbdt_dataset`). ``modalities`` picks
    the sensors read (RGB first, any of depth / thermal after it), so the
    same data train an RGB-D-T, an RGB-D or an RGB-T model. It is a
    :class:`MultiModalFolderDataset` (one folder per sensor). Load a sample
    with :class:`LoadMultiModalImageFromFile` (depth: 'raw', millimetres;
    thermal: 'thermal', grey repeated to 3 channels) and
    :class:`LoadMultiModalAnnotations`.

    Example::

        dict(type='QuickstartRGBDTDataset',
             data_root='data/quickstart_rgbdt', ann_file='train.txt',
             modalities=['rgb', 'depth', 'thermal'])

    Args:
        data_root (str): Where the dataset lives (or is generated).
        ann_file (str): List file relative to ``data_root``, one sample
            name per line ('train.txt' or 'val.txt').
        modalities (Sequence[str]): Defaults to
            ``('rgb', 'depth', 'thermal')``.
        generate_cfg (dict): Arguments of
            :func:`generate_quickstart_rgbdt_dataset` (num_train, num_val,
            size, seed).
        **kwargs: :class:`MultiModalFolderDataset` arguments.
    """
    METAINFO = dict(classes=RGBDT_CLASSES, palette=RGBDT_PALETTE)
    SUPPORTED_MODALITIES = ('rgb', 'depth', 'thermal')

    def __init__(self,
                 data_root: str,
                 ann_file: str = 'train.txt',
                 modalities: Sequence[str] = ('rgb', 'depth', 'thermal'),
                 generate_cfg: dict = dict(),
                 **kwargs) -> None:
        generate_quickstart_rgbdt_dataset(data_root, **generate_cfg)
        kwargs.setdefault('data_prefix', dict(seg_map_path='masks'))
        super().__init__(
            modalities=modalities,
            data_root=data_root,
            ann_file=ann_file,
            reduce_zero_label=False,
            **kwargs)

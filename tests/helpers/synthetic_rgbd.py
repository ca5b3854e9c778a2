"""Small, deterministic synthetic RGB-D datasets in the real folder layouts.

Every sample is built from one coarse block pattern of class ids, so the
modalities are tied together and alignment can be checked after any
geometric transform:

* the label is the class id (ignore / void where the pattern says so);
* the depth is ``(class + 1) * depth_step(bits)`` (0 where ignored), see
  :func:`depth_to_label`;
* the RGB colour is :func:`class_color` of the class plus a little noise.

Layouts (all return ``root``):

* :func:`make_nyudv2_tokenfusion`: ``rgb/``, ``depth/`` (16-bit PNG),
  ``masks/`` (0..39, 255 = ignore), ``train.txt`` / ``test.txt`` with
  ``rgb/X.png<TAB>masks/X.png<TAB>depth/X.png`` lines; as in the released
  copy, RGB and mask are border-cropped (a different size per image) while
  depth is the full frame (``border_crop``);
* :func:`make_sunrgbd_dformer`: ``RGB/*.jpg``, ``Depth/*.png`` (8-bit),
  ``labels/*.png`` (0 = unlabelled, 1..37), 3-column lists;
* :func:`make_nyudv2_dformer`: ``RGB/*.jpg``, ``Depth/*.png`` (8-bit) or
  ``HHA/*.jpg``, ``Label/*.png`` (0 = void, 1..40), one-column lists
  (``RGB/X.jpg``).

Example::

    root = make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=4, num_test=2)
    ds = NYUDv2Dataset(data_root=root, ann_file='train.txt', pipeline=[...])
"""
import os
import os.path as osp
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'IGNORE', 'block_labels', 'border_crop_box', 'class_color', 'depth_step',
    'depth_to_label', 'label_to_depth', 'make_nyudv2_tokenfusion',
    'make_sunrgbd_dformer', 'make_nyudv2_dformer', 'write_list'
]

IGNORE = 255
PathLike = Union[str, 'os.PathLike[str]']


def depth_step(bits: int) -> int:
    """Depth units per class step: 500 for 16-bit maps, 6 for 8-bit."""
    if bits not in (8, 16):
        raise ValueError(f'depth bits must be 8 or 16, got {bits}')
    return 500 if bits == 16 else 6


def block_labels(size: Tuple[int, int],
                 num_classes: int,
                 rng: np.random.Generator,
                 block: int = 8,
                 ignore_ratio: float = 0.1) -> np.ndarray:
    """A (H, W) uint8 map of ``block`` x ``block`` cells of random classes.

    About ``ignore_ratio`` of the cells are :data:`IGNORE` (255).
    """
    h, w = size
    gh, gw = -(-h // block), -(-w // block)
    cells = rng.integers(0, num_classes, size=(gh, gw))
    cells[rng.random((gh, gw)) < ignore_ratio] = IGNORE
    labels = np.repeat(np.repeat(cells, block, axis=0), block, axis=1)
    return labels[:h, :w].astype(np.uint8)


def label_to_depth(labels: np.ndarray, bits: int = 16) -> np.ndarray:
    """Depth tied to the class: ``(c + 1) * depth_step(bits)``; 0 = ignore."""
    step = depth_step(bits)
    depth = (labels.astype(np.int64) + 1) * step
    depth[labels == IGNORE] = 0
    return depth.astype(np.uint16 if bits == 16 else np.uint8)


def depth_to_label(depth: np.ndarray, bits: int = 16) -> np.ndarray:
    """Inverse of :func:`label_to_depth` (rounding), 255 where depth is 0."""
    step = depth_step(bits)
    labels = np.rint(np.asarray(depth, dtype=np.float64) / step).astype(
        np.int64) - 1
    labels[labels < 0] = IGNORE
    return labels


def class_color(labels: np.ndarray) -> np.ndarray:
    """A (H, W, 3) uint8 RGB colour per class (any id 0..255)."""
    ids = labels.astype(np.int64)
    rgb = np.stack([(ids * 37) % 256, (ids * 91 + 40) % 256,
                    (ids * 151 + 80) % 256],
                   axis=-1)
    return rgb.astype(np.uint8)


def _rgb_image(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(-8, 9, size=labels.shape + (3, ))
    return np.clip(class_color(labels).astype(np.int64) + noise, 0,
                   255).astype(np.uint8)


def _write(path: str, image: np.ndarray, rgb: bool = False) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, image):
        raise OSError(f'could not write {path}')


def write_list(path: PathLike, lines: Sequence[str]) -> str:
    """Write a list file (one entry per line, trailing newline)."""
    path = str(path)
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))
    return path


def _splits(num_train: int, num_test: int):
    return (('train', range(num_train)), ('test',
                                          range(num_train,
                                                num_train + num_test)))


def border_crop_box(size: Tuple[int, int],
                    rng: np.random.Generator,
                    max_fraction: float = 0.15) -> Tuple[int, int, int, int]:
    """A random border crop ``(top, bottom, left, right)`` (rows / columns
    removed) of a ``size`` frame: 1 .. ``max_fraction`` of each side in
    all, split as TokenFusion's ``CropAlignToMask`` would undo it
    (``top = total // 2``, the odd remainder at the bottom / right), so
    that centre-cropping the full frame to the cropped size aligns it."""
    crop = []
    for n in size:
        total = int(rng.integers(1, max(2, int(n * max_fraction) + 1)))
        crop += [total // 2, total - total // 2]
    return tuple(crop)


def make_nyudv2_tokenfusion(root: PathLike,
                            num_train: int = 4,
                            num_test: int = 2,
                            size: Tuple[int, int] = (48, 64),
                            depth_bits: int = 16,
                            block: int = 8,
                            seed: int = 0,
                            border_crop: bool = True) -> str:
    """NYUDv2 in the TokenFusion layout (the GeminiFusion default).

    ``rgb/XXXXXX.png``, ``depth/XXXXXX.png`` (``depth_bits``-bit),
    ``masks/XXXXXX.png`` (0..39, 255), ``train.txt``, ``test.txt``.
    Samples are numbered 0..num_train-1 (train) then test.

    ``size`` is the full frame (the Kinect's 480x640 scaled down). As in
    the released copy (``border_crop``, the default), depth is the full
    frame while RGB and mask are the frame with its border cropped off
    (:func:`border_crop_box`: a different size per image, centred); sample
    0 keeps the full frame (the copy holds 480x640 images too). With
    ``border_crop=False`` every file is ``size``. The block pattern is
    drawn on the full frame, so depth centre-cropped to the RGB size
    (``size_mismatch='crop'``) is aligned with the mask and stretched
    depth (``'stretch'``) is not.
    """
    root = str(root)
    rng = np.random.default_rng(seed)
    for split, ids in _splits(num_train, num_test):
        lines = []
        for i in ids:
            name = f'{i:06d}.png'
            full = block_labels(size, 40, rng, block=block)
            labels = full
            if border_crop and i > 0:
                top, bottom, left, right = border_crop_box(size, rng)
                labels = full[top:size[0] - bottom, left:size[1] - right]
            _write(
                osp.join(root, 'rgb', name), _rgb_image(labels, rng), rgb=True)
            _write(
                osp.join(root, 'depth', name),
                label_to_depth(full, depth_bits))
            _write(osp.join(root, 'masks', name), labels)
            lines.append(f'rgb/{name}\tmasks/{name}\tdepth/{name}')
        write_list(osp.join(root, f'{split}.txt'), lines)
    return root


def make_sunrgbd_dformer(root: PathLike,
                         num_train: int = 4,
                         num_test: int = 2,
                         size: Tuple[int, int] = (48, 64),
                         block: int = 8,
                         seed: int = 0) -> str:
    """SUN RGB-D in the DFormer layout used by GeminiFusion.

    ``RGB/{split}_{i}.jpg``, ``Depth/{split}_{i}.png`` (8-bit),
    ``labels/{split}_{i}.png`` (0 = unlabelled, class c stored as c + 1),
    ``train.txt`` / ``test.txt`` with lines
    ``RGB/train_0.jpg<TAB>labels/train_0.png<TAB>Depth/train_0.png``.
    Depth is tied to the 0-based class (:func:`label_to_depth`, 8-bit).
    """
    root = str(root)
    rng = np.random.default_rng(seed)
    for split, ids in _splits(num_train, num_test):
        lines = []
        for k, _ in enumerate(ids):
            stem = f'{split}_{k}'
            labels = block_labels(size, 37, rng, block=block)
            stored = np.where(labels == IGNORE, 0, labels + 1).astype(np.uint8)
            _write(
                osp.join(root, 'RGB', stem + '.jpg'),
                _rgb_image(labels, rng),
                rgb=True)
            _write(
                osp.join(root, 'Depth', stem + '.png'),
                label_to_depth(labels, 8))
            _write(osp.join(root, 'labels', stem + '.png'), stored)
            lines.append(f'RGB/{stem}.jpg\tlabels/{stem}.png\t'
                         f'Depth/{stem}.png')
        write_list(osp.join(root, f'{split}.txt'), lines)
    return root


def make_nyudv2_dformer(root: PathLike,
                        num_train: int = 4,
                        num_test: int = 2,
                        size: Tuple[int, int] = (48, 64),
                        depth: str = 'depth',
                        block: int = 8,
                        seed: int = 0,
                        list_columns: Optional[int] = 1) -> str:
    """NYUDv2 in the DFormer/CMX layout.

    ``RGB/{i}.jpg``, ``Label/{i}.png`` (0 = void, class c stored as c + 1)
    and either ``Depth/{i}.png`` (8-bit, ``depth='depth'``) or
    ``HHA/{i}.jpg`` (3 different channels, ``depth='hha'``).
    ``train.txt`` / ``test.txt`` hold ``RGB/{i}.jpg`` (``list_columns=1``,
    DFormer's format), or 3 columns (``list_columns=3``), or are not
    written (``list_columns=None``: pair by name).
    """
    if depth not in ('depth', 'hha'):
        raise ValueError(f"depth must be 'depth' or 'hha', got {depth!r}")
    root = str(root)
    rng = np.random.default_rng(seed)
    for split, ids in _splits(num_train, num_test):
        lines = []
        for i in ids:
            labels = block_labels(size, 40, rng, block=block)
            stored = np.where(labels == IGNORE, 0, labels + 1).astype(np.uint8)
            _write(
                osp.join(root, 'RGB', f'{i}.jpg'),
                _rgb_image(labels, rng),
                rgb=True)
            _write(osp.join(root, 'Label', f'{i}.png'), stored)
            if depth == 'depth':
                depth_rel = f'Depth/{i}.png'
                _write(osp.join(root, depth_rel), label_to_depth(labels, 8))
            else:
                depth_rel = f'HHA/{i}.jpg'
                d = label_to_depth(labels, 8).astype(np.int64)
                hha = np.stack([d, 255 - d, (d * 3) % 256], axis=-1)
                _write(
                    osp.join(root, depth_rel), hha.astype(np.uint8), rgb=True)
            if list_columns == 1:
                lines.append(f'RGB/{i}.jpg')
            else:
                lines.append(f'RGB/{i}.jpg\tLabel/{i}.png\t{depth_rel}')
        if list_columns is not None:
            write_list(osp.join(root, f'{split}.txt'), lines)
    return root

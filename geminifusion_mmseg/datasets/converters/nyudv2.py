"""Official NYU Depth V2 labeled set -> the TokenFusion folder layout.

The official ``nyu_depth_v2_labeled.mat`` is a MATLAB v7.3 file (HDF5). Its
arrays are stored with the axes reversed relative to MATLAB, so h5py sees

==============  ==========================  =========================
dataset         h5py shape                  content
==============  ==========================  =========================
``images``      (N, 3, W, H) uint8          RGB
``depths``      (N, W, H) float32           in-painted depth, metres
``rawDepths``   (N, W, H) float32           raw Kinect depth, metres
``labels``      (N, W, H) uint16            0 = unlabelled, 1..894
==============  ==========================  =========================

with N = 1449 and (H, W) = (480, 640): frame ``i`` (0-based) is
``images[i].transpose(2, 1, 0)`` as (H, W, 3). The frames are read one at a
time, so the 2.8 GB file is never held in memory.

The output is the layout :class:`NYUDv2Dataset` reads (the copy GeminiFusion
and TokenFusion were trained on): ``rgb/%06d.png``, ``depth/%06d.png``
(16-bit, millimetres), ``masks/%06d.png`` (40 classes 0..39, 255 =
unlabelled), named by the 1-based frame index, and ``train.txt`` (795) /
``val.txt`` (654, the official test split) with lines
``rgb/X.png<TAB>masks/X.png<TAB>depth/X.png``.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..nyudv2_meta import (NYU894_TO_40, NYU_NUM_FRAMES, NYU_TEST_FRAMES,
                           NYU_TRAIN_FRAMES, RELEASED_BORDER)
from .matlab import open_v73
from .output import ConverterError, OutputFolder

DEPTH_SOURCES = ('depths', 'rawDepths')
TOOL = 'nyudv2'


def label_lut() -> np.ndarray:
    """(895,) uint8: 894-class id -> 40-class id 0..39, 0 -> 255."""
    lut = np.full(len(NYU894_TO_40) + 1, 255, dtype=np.uint8)
    lut[1:] = np.asarray(NYU894_TO_40, dtype=np.uint8) - 1
    return lut


def frame_name(index: int) -> str:
    """File stem of the 1-based frame ``index``: ``'000001'``."""
    return f'{index:06d}'


def parse_frames(text: str) -> list:
    """``'1-3,9'`` -> ``[1, 2, 3, 9]`` (1-based frame indices)."""
    frames = []
    for part in text.split(','):
        lo, sep, hi = part.strip().partition('-')
        try:
            frames.extend(range(int(lo), int(hi if sep else lo) + 1))
        except ValueError as e:
            raise ConverterError(
                f'Bad frame list {text!r}: use e.g. "1-10,20".') from e
    return frames


def metres_to_mm(depth: np.ndarray, where: str) -> np.ndarray:
    """(H, W) float metres -> uint16 millimetres (rounded).

    Raises:
        ConverterError: for NaN/inf, negative values or values past
            65.535 m, naming ``where``.
    """
    if not np.isfinite(depth).all():
        raise ConverterError(f'{where}: depth has NaN or inf values.')
    mm = np.rint(depth.astype(np.float64) * 1000.)
    if mm.min() < 0 or mm.max() > 65535:
        raise ConverterError(
            f'{where}: depth {depth.min():.3f}..{depth.max():.3f} m is not '
            'in 0..65.535 m (expected metres).')
    return mm.astype(np.uint16)


def crop_border(img: np.ndarray, border: Sequence[int],
                where: str) -> np.ndarray:
    """Remove ``border = (top, bottom, left, right)`` pixels."""
    top, bottom, left, right = border
    h, w = img.shape[:2]
    if top + bottom >= h or left + right >= w:
        raise ConverterError(
            f'{where}: the border {tuple(border)} (top, bottom, left, right) '
            f'leaves nothing of a {h}x{w} frame.')
    return img[top:h - bottom, left:w - right]


class _LabeledMat:
    """The datasets of ``nyu_depth_v2_labeled.mat``, read frame by frame."""

    def __init__(self, path: str, depth_source: str) -> None:
        self.path = path
        self.file = open_v73(path, 'the official nyu_depth_v2_labeled.mat')
        missing = [
            k for k in ('images', depth_source, 'labels') if k not in self.file
        ]
        if missing:
            keys = sorted(self.file.keys())
            self.file.close()
            raise ConverterError(
                f'{path} has no dataset(s) {missing} (it has {keys}); '
                'expected the official nyu_depth_v2_labeled.mat.')
        self.images = self.file['images']
        self.depths = self.file[depth_source]
        self.labels = self.file['labels']
        self._check()

    def _check(self) -> None:
        images, depths, labels = self.images, self.depths, self.labels
        ok = (
            images.ndim == 4 and images.shape[1] == 3 and depths.ndim == 3
            and labels.ndim == 3
            and images.shape[0] == depths.shape[0] == labels.shape[0]
            and images.shape[2:] == depths.shape[1:] == labels.shape[1:])
        if not ok:
            raise ConverterError(
                f'{self.path}: images {images.shape}, depth {depths.shape}, '
                f'labels {labels.shape}; expected (N, 3, W, H), (N, W, H), '
                '(N, W, H) as in nyu_depth_v2_labeled.mat.')
        if images.shape[0] != NYU_NUM_FRAMES:
            raise ConverterError(
                f'{self.path} has {images.shape[0]} frames; the official '
                f'split needs the {NYU_NUM_FRAMES} labelled frames.')

    def frame(self, index: int) -> Tuple[np.ndarray, ...]:
        """RGB (H, W, 3) uint8, depth (H, W) metres, labels (H, W) of the
        1-based frame ``index``."""
        i = index - 1
        rgb = np.ascontiguousarray(self.images[i].transpose(2, 1, 0))
        depth = np.ascontiguousarray(self.depths[i].T)
        labels = np.ascontiguousarray(self.labels[i].T)
        return rgb.astype(np.uint8), depth, labels

    def close(self) -> None:
        self.file.close()


def convert_nyudv2(mat_path: str,
                   out_dir: str,
                   crop: bool = False,
                   border: Sequence[int] = RELEASED_BORDER,
                   depth_source: str = 'depths',
                   frames: Optional[Sequence[int]] = None,
                   progress: bool = True) -> Dict[str, list]:
    """Convert ``nyu_depth_v2_labeled.mat`` to the TokenFusion layout.

    Args:
        mat_path (str): The official ``nyu_depth_v2_labeled.mat``.
        out_dir (str): A new or empty folder (see :class:`OutputFolder`).
        crop (bool): Crop ``border`` from RGB and labels as the released
            copy did (468x625 from 480x640); depth keeps the full frame,
            as in that copy. Defaults to False (everything 480x640).
        border (Sequence[int]): (top, bottom, left, right) pixels for
            ``crop``. Defaults to :data:`RELEASED_BORDER`.
        depth_source (str): ``'depths'`` (in-painted, the default) or
            ``'rawDepths'`` (raw Kinect depth, 0 = missing).
        frames (Sequence[int], optional): 1-based frames to convert (all
            1449 by default); the lists hold the converted frames.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``'train'`` and ``'val'``: the converted frame indices.
    """
    if depth_source not in DEPTH_SOURCES:
        raise ConverterError(f'depth_source must be one of {DEPTH_SOURCES}, '
                             f'got {depth_source!r}.')
    if frames is None:
        frames = range(1, NYU_NUM_FRAMES + 1)
    frames = sorted(set(int(i) for i in frames))
    bad = [i for i in frames if not 1 <= i <= NYU_NUM_FRAMES]
    if bad:
        raise ConverterError(
            f'Frame indices {bad[:5]} are not in 1..{NYU_NUM_FRAMES}.')
    mat = _LabeledMat(mat_path, depth_source)
    try:
        out = OutputFolder(out_dir, TOOL, [mat_path])
        lut = label_lut()
        bar = ProgressBar(len(frames)) if progress else None
        for index in frames:
            where = f'{mat_path} frame {index}'
            rgb, depth, labels = mat.frame(index)
            if labels.max(initial=0) >= len(lut):
                raise ConverterError(
                    f'{where}: label {int(labels.max())} is not in 0..894.')
            masks = lut[labels]
            if crop:
                rgb = crop_border(rgb, border, where)
                masks = crop_border(masks, border, where)
            name = frame_name(index)
            out.write_png(f'rgb/{name}.png', rgb)
            out.write_png(f'depth/{name}.png', metres_to_mm(depth, where))
            out.write_png(f'masks/{name}.png', masks)
            if bar is not None:
                bar.update()
    finally:
        mat.close()
    done = set(frames)
    split = {
        'train': [i for i in NYU_TRAIN_FRAMES if i in done],
        'val': [i for i in NYU_TEST_FRAMES if i in done]
    }
    for key, indices in split.items():
        out.write_lines(f'{key}.txt', [
            f'rgb/{n}.png\tmasks/{n}.png\tdepth/{n}.png'
            for n in map(frame_name, indices)
        ])
    print_log(
        f'Wrote {len(frames)} NYUDv2 frames to {out_dir}: '
        f'{len(split["train"])} train, {len(split["val"])} val (test split)' +
        (f'; RGB and masks cropped by {tuple(border)}' if crop else ''),
        logger='current')
    return split

"""Metric depth images -> HHA images (tools/dataset_converters/depth2hha.py).

Each depth PNG becomes ``OUT/<name>.png``, an 8-bit RGB image whose
channels are disparity, height and angle (the files of the HHA code of
Gupta et al., read back in that order by ``depth_encoding='hha'``), with
:func:`~geminifusion_mmseg.datasets.transforms.hha.depth_to_hha`.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from ..transforms.hha import (depth_to_hha, gravity_from_rotation,
                              parse_intrinsics)
from .output import ConverterError, OutputFolder

TOOL = 'depth2hha'


def read_rotations(path: str) -> np.ndarray:
    """Read 3x3 rotation matrices from a text file.

    The format of ``camera_rotations_NYU.txt``: three rows of three numbers
    per matrix, matrices one after the other (blank lines ignored); rows of
    four numbers (a 3x4 ``[R | t]``, as ``sunrgbd_train_T_fileNames.txt``)
    keep their first three.

    Returns:
        np.ndarray: (N, 3, 3).
    """
    rows = []
    with open(path) as f:
        for num, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                values = [float(v) for v in line.split()]
            except ValueError as e:
                raise ConverterError(
                    f'{path} line {num}: not numbers: {line.strip()!r}') from e
            if len(values) not in (3, 4):
                raise ConverterError(
                    f'{path} line {num}: {len(values)} numbers; a rotation '
                    'row has 3 (or 4, [R | t]).')
            rows.append(values[:3])
    if not rows or len(rows) % 3:
        raise ConverterError(f'{path} has {len(rows)} rows; expected 3 per '
                             'rotation matrix.')
    mats = np.asarray(rows).reshape(-1, 3, 3)
    bad = np.abs(np.einsum('nij,nkj->nik', mats, mats) -
                 np.eye(3)).max(axis=(1, 2)) > 1e-3
    if bad.any():
        raise ConverterError(
            f'{path}: matrix {int(np.argmax(bad)) + 1} is not a rotation.')
    return mats


def read_intrinsics(spec: str) -> Tuple[float, ...]:
    """A preset name, ``'fx,fy,cx,cy'``, or a text file with the 3x3
    camera matrix (SUN RGB-D's ``intrinsics.txt``) -> (fx, fy, cx, cy)."""
    try:
        if osp.isfile(spec):
            values = np.loadtxt(spec, dtype=np.float64)
        elif ',' in spec:
            values = [float(v) for v in spec.split(',')]
        else:
            values = spec
        return parse_intrinsics(values)[0]
    except ValueError as e:
        raise ConverterError(f'Intrinsics {spec!r}: {e}') from e


def list_depth_images(source: str) -> List[str]:
    """The depth images of a folder (``*.png``, sorted by name) or a list
    file (one path per line, relative to the list's folder)."""
    if osp.isdir(source):
        files = sorted(
            f for f in os.listdir(source) if f.lower().endswith('.png'))
        paths = [osp.join(source, f) for f in files]
    elif osp.isfile(source):
        base = osp.dirname(source)
        with open(source, encoding='utf-8-sig') as f:
            paths = [
                osp.join(base,
                         line.split()[0]) for line in f if line.strip()
            ]
    else:
        raise ConverterError(f'{source} does not exist.')
    if not paths:
        raise ConverterError(f'{source} lists no depth images.')
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    if len(set(stems)) != len(stems):
        raise ConverterError(f'{source} names two images with the same file '
                             'name; the HHA images would overwrite each '
                             'other.')
    return paths


def _rotation_for(rotations: np.ndarray, paths: Sequence[str], i: int,
                  source: str) -> np.ndarray:
    """The rotation of image i: by position when the counts agree, else
    by the 1-based frame number in its name (``000123.png``)."""
    if len(rotations) == len(paths):
        return rotations[i]
    stem = osp.splitext(osp.basename(paths[i]))[0]
    if stem.isdigit() and 1 <= int(stem) <= len(rotations):
        return rotations[int(stem) - 1]
    raise ConverterError(
        f'{source} has {len(rotations)} rotations for {len(paths)} images, '
        f'and {paths[i]} is not named by a frame number 1..{len(rotations)}.')


def _read_depth(path: str) -> np.ndarray:
    depth = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise ConverterError(f'{path} cannot be read as an image.')
    if depth.ndim != 2:
        raise ConverterError(f'{path} has {depth.shape[2]} channels; a depth '
                             'map has one.')
    return depth.astype(np.float64)


def convert_depth_to_hha(source: str,
                         out_dir: str,
                         intrinsics: str = 'nyu',
                         depth_unit: float = 1e-3,
                         intrinsics_dir: Optional[str] = None,
                         raw_depth_dir: Optional[str] = None,
                         rotations: Optional[str] = None,
                         progress: bool = True) -> List[str]:
    """Write the HHA image of every depth image of ``source``.

    Args:
        source (str): A folder of depth PNGs or a list file of them.
        out_dir (str): A new or empty folder (see :class:`OutputFolder`).
        intrinsics (str): ``'nyu'``, ``'nyu-border-cropped'``,
            ``'fx,fy,cx,cy'`` or a 3x3 camera-matrix file, for every image.
        depth_unit (float): Metres per stored unit. Defaults to 1e-3.
        intrinsics_dir (str, optional): A folder of ``<name>.txt`` camera
            matrices, one per image (``sunrgbd.py --intrinsics``); takes
            precedence over ``intrinsics``.
        raw_depth_dir (str, optional): A folder of raw depth images with
            the same names; their zeros mark the missing pixels (as the
            authors' code does with in-painted depth). Defaults to the
            zeros of the depth itself.
        rotations (str, optional): A rotation file (:func:`read_rotations`)
            giving gravity per image; estimated from the normals otherwise.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        list[str]: The written files.
    """
    if not depth_unit > 0:
        raise ConverterError(f'depth_unit must be > 0, got {depth_unit}.')
    paths = list_depth_images(source)
    default_k = None if intrinsics_dir else read_intrinsics(intrinsics)
    mats = None if rotations is None else read_rotations(rotations)
    inputs = [source] + [d for d in (raw_depth_dir, intrinsics_dir) if d]
    out = OutputFolder(out_dir, TOOL, inputs)
    bar = ProgressBar(len(paths)) if progress else None
    written = []
    for i, path in enumerate(paths):
        name = osp.splitext(osp.basename(path))[0]
        stored = _read_depth(path)
        missing = None
        if raw_depth_dir is not None:
            raw = _read_depth(osp.join(raw_depth_dir, osp.basename(path)))
            if raw.shape != stored.shape:
                raise ConverterError(
                    f'{path} is {stored.shape[0]}x{stored.shape[1]} but its '
                    f'raw depth {raw.shape[0]}x{raw.shape[1]}.')
            missing = raw == 0
        k = default_k if default_k is not None else read_intrinsics(
            osp.join(intrinsics_dir, name + '.txt'))
        gravity = None if mats is None else gravity_from_rotation(
            _rotation_for(mats, paths, i, rotations))
        try:
            hha = depth_to_hha(
                stored * depth_unit, k, missing=missing, gravity=gravity)
        except ValueError as e:
            raise ConverterError(f'{path}: {e}') from e
        written.append(out.write_png(f'{name}.png', hha))
        if bar is not None:
            bar.update()
    print_log(
        f'Wrote {len(written)} HHA images to {out_dir} (gravity '
        f'{"from " + rotations if rotations else "estimated"}).',
        logger='current')
    return written

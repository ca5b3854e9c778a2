"""Official SUN RGB-D download -> the DFormer folder layout.

Inputs (both from the SUN RGB-D site):

- ``SUNRGBD.zip`` extracted: one folder per sample, e.g.
  ``SUNRGBD/kv1/NYUdata/NYU0001/`` with ``image/<name>.jpg``,
  ``depth/<name>.png`` (raw), ``depth_bfx/<name>.png`` (in-painted),
  ``intrinsics.txt`` ...; depth PNGs store millimetres rotated left by 3
  bits (the toolbox's ``read3dPoints`` undoes it with
  ``bitor(bitshift(d, -3), bitshift(d, 13))``).
- ``SUNRGBDtoolbox.zip`` extracted:

  * ``Metadata/SUNRGBDMeta.mat`` (MATLAB v5): the struct array
    ``SUNRGBDMeta`` (1 x 10335), whose ``rgbpath`` names each sample
    (``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg``);
  * ``Metadata/SUNRGBD2Dseg.mat`` (MATLAB v7.3, HDF5): the struct array
    ``SUNRGBD2Dseg``, in the same order, whose field ``seglabel`` is an
    (10335, 1) array of object references to the (W, H) label maps,
    0 = unlabelled, 1..37 the classes of ``seg37list``;
  * ``traintestSUNRGBD/allsplit.mat`` (MATLAB v5): cell arrays
    ``alltrain`` (5285) and ``alltest`` (5050) of sample folders;
  * ``Metadata/seg37list.mat`` (optional): the 37 class names, checked.

Output (the layout :class:`SUNRGBDDataset` and the zoo configs read):
``RGB/train_0.jpg`` ... (the JPEG copied byte for byte), ``Depth/*.png``,
``labels/*.png`` (0 = unlabelled, 1..37) and ``train.txt`` / ``test.txt``
with lines ``RGB/train_0.jpg<TAB>labels/train_0.png<TAB>Depth/train_0.png``.
Samples are numbered from 0 in the order of ``alltrain`` / ``alltest``.
"""
import os
import os.path as osp
from typing import Dict, List, Sequence

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from .matlab import load_v5, mat_string, mat_strings, open_v73
from .output import ConverterError, OutputFolder

TOOL = 'sunrgbd'
DEPTH_FOLDERS = ('depth_bfx', 'depth')
DEPTH_FORMATS = ('minmax8', 'mm16')
# seg37list of the toolbox, in label order 1..37
SUNRGBD_SEG37 = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
                 'door', 'window', 'bookshelf', 'picture', 'counter', 'blinds',
                 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
                 'floor_mat', 'clothes', 'ceiling', 'books', 'fridge', 'tv',
                 'paper', 'towel', 'shower_curtain', 'box', 'whiteboard',
                 'person', 'night_stand', 'toilet', 'sink', 'lamp', 'bathtub',
                 'bag')


def decode_depth(stored: np.ndarray) -> np.ndarray:
    """SUN RGB-D depth PNG values (uint16) -> millimetres (uint16).

    The files hold the millimetres rotated left by 3 bits; this rotates
    them back (the toolbox's ``read3dPoints``).
    """
    stored = stored.astype(np.uint16)
    return (stored >> 3) | (stored << 13)


def minmax_uint8(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth -> uint8 scaled to the image's own range.

    ``round((d - min) / (max - min) * 255)`` over all pixels; a constant
    image gives zeros.
    """
    depth = depth.astype(np.float64)
    lo, hi = depth.min(), depth.max()
    if hi <= lo:
        return np.zeros(depth.shape, np.uint8)
    return np.rint((depth - lo) * (255. / (hi - lo))).astype(np.uint8)


def sample_folder(path: str) -> str:
    """The part of a toolbox path after ``SUNRGBD/``, no trailing '/'.

    ``'/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/'`` ->
    ``'kv1/NYUdata/NYU0001'``.
    """
    path = path.replace('\\', '/').rstrip('/')
    marker = '/SUNRGBD/'
    at = ('/' + path).find(marker)
    if at < 0:
        raise ConverterError(
            f'{path!r} is not a SUN RGB-D path (no "SUNRGBD/" in it).')
    return ('/' + path)[at + len(marker):]


def read_split(path: str) -> Dict[str, List[str]]:
    """``allsplit.mat`` -> ``{'train': [...], 'test': [...]}`` folders."""
    mat = load_v5(path, 'split file')
    for key in ('alltrain', 'alltest'):
        if key not in mat:
            raise ConverterError(f'{path} has no {key!r}.')
    return {
        'train': [sample_folder(p) for p in mat_strings(mat['alltrain'])],
        'test': [sample_folder(p) for p in mat_strings(mat['alltest'])]
    }


def read_meta_folders(path: str) -> List[str]:
    """``SUNRGBDMeta.mat`` -> the sample folder of every entry, in order."""
    mat = load_v5(path, 'metadata file')
    if 'SUNRGBDMeta' not in mat:
        raise ConverterError(f'{path} has no SUNRGBDMeta.')
    meta = mat['SUNRGBDMeta'].ravel(order='F')
    if 'rgbpath' not in (meta.dtype.names or ()):
        raise ConverterError(f'{path}: SUNRGBDMeta has no rgbpath field.')
    folders = []
    for entry in meta:
        rgbpath = mat_string(entry['rgbpath'])
        # .../<sample>/image/<name>.jpg -> <sample>
        folders.append(sample_folder(rgbpath.rsplit('/', 2)[0]))
    return folders


def check_seg37(path: str) -> None:
    """Refuse a ``seg37list.mat`` whose classes are not the expected 37."""
    names = tuple(mat_strings(load_v5(path, 'class list')['seg37list']))
    if names != SUNRGBD_SEG37:
        raise ConverterError(
            f'{path} lists the classes {list(names)}; expected '
            f'{list(SUNRGBD_SEG37)} (the labels would be mislabelled).')


def _single_file(folder: str, exts: Sequence[str]) -> str:
    if not osp.isdir(folder):
        raise ConverterError(f'{folder} does not exist.')
    files = sorted(
        f for f in os.listdir(folder) if f.lower().endswith(tuple(exts)))
    if len(files) != 1:
        raise ConverterError(
            f'{folder} holds {len(files)} {"/".join(exts)} files; expected '
            'exactly one.')
    return osp.join(folder, files[0])


class _SegLabels:
    """The label maps of ``SUNRGBD2Dseg.mat``, dereferenced one by one."""

    def __init__(self, path: str) -> None:
        self.file = open_v73(path, "the toolbox's SUNRGBD2Dseg.mat")
        try:
            self.refs = self.file['SUNRGBD2Dseg']['seglabel']
        except KeyError as e:
            self.file.close()
            raise ConverterError(
                f'{path} has no SUNRGBD2Dseg/seglabel; expected the '
                "toolbox's Metadata/SUNRGBD2Dseg.mat.") from e
        self.path = path

    def __len__(self) -> int:
        return int(np.prod(self.refs.shape))

    def __getitem__(self, index: int) -> np.ndarray:
        """(H, W) uint8 label map of the 0-based entry ``index``."""
        ref = self.refs[index, 0] if self.refs.ndim == 2 else \
            self.refs[index]
        label = np.asarray(self.file[ref]).T
        if label.size and (label.min() < 0 or label.max() > 37):
            raise ConverterError(
                f'{self.path} entry {index + 1}: labels '
                f'{label.min()}..{label.max()} are not in 0..37.')
        return np.ascontiguousarray(label.astype(np.uint8))

    def close(self) -> None:
        self.file.close()


def convert_sunrgbd(sunrgbd_root: str,
                    toolbox_root: str,
                    out_dir: str,
                    depth_folder: str = 'depth_bfx',
                    depth_format: str = 'minmax8',
                    copy_intrinsics: bool = False,
                    progress: bool = True) -> Dict[str, List[str]]:
    """Convert the official SUN RGB-D download to the DFormer layout.

    Args:
        sunrgbd_root (str): The extracted ``SUNRGBD`` folder (with
            ``kv1/``, ``kv2/``, ``realsense/``, ``xtion/``), or its parent.
        toolbox_root (str): The extracted ``SUNRGBDtoolbox`` folder.
        out_dir (str): A new or empty folder (see :class:`OutputFolder`).
        depth_folder (str): ``'depth_bfx'`` (in-painted, the default) or
            ``'depth'`` (raw, 0 = missing).
        depth_format (str): ``'minmax8'`` (the default, the DFormer copy:
            8-bit, each image scaled to its own min..max millimetres) or
            ``'mm16'`` (16-bit millimetres, metric).
        copy_intrinsics (bool): Also copy each ``intrinsics.txt`` to
            ``Intrinsics/<name>.txt`` (for HHA). Defaults to False.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``'train'`` / ``'test'``: the sample folders in name order
        (``train_0`` first).
    """
    if depth_folder not in DEPTH_FOLDERS:
        raise ConverterError(f'depth_folder must be one of {DEPTH_FOLDERS}, '
                             f'got {depth_folder!r}.')
    if depth_format not in DEPTH_FORMATS:
        raise ConverterError(f'depth_format must be one of {DEPTH_FORMATS}, '
                             f'got {depth_format!r}.')
    if not osp.isdir(osp.join(sunrgbd_root, 'kv1')) and osp.isdir(
            osp.join(sunrgbd_root, 'SUNRGBD')):
        sunrgbd_root = osp.join(sunrgbd_root, 'SUNRGBD')
    if not osp.isdir(sunrgbd_root):
        raise ConverterError(f'SUN RGB-D folder {sunrgbd_root} does not '
                             'exist.')
    split = read_split(
        osp.join(toolbox_root, 'traintestSUNRGBD', 'allsplit.mat'))
    meta = read_meta_folders(
        osp.join(toolbox_root, 'Metadata', 'SUNRGBDMeta.mat'))
    seg37 = osp.join(toolbox_root, 'Metadata', 'seg37list.mat')
    if osp.isfile(seg37):
        check_seg37(seg37)
    index_of = {folder: i for i, folder in enumerate(meta)}
    both = set(split['train']) & set(split['test'])
    if both:
        raise ConverterError(
            f'{len(both)} sample(s) are in both alltrain and alltest of '
            f'allsplit.mat, e.g. {sorted(both)[:3]}.')
    missing = [f for f in split['train'] + split['test'] if f not in index_of]
    if missing:
        raise ConverterError(
            f'{len(missing)} sample(s) of allsplit.mat are not in '
            f'SUNRGBDMeta.mat, e.g. {missing[:3]}.')
    labels = _SegLabels(osp.join(toolbox_root, 'Metadata', 'SUNRGBD2Dseg.mat'))
    try:
        if len(labels) != len(meta):
            raise ConverterError(
                f'{labels.path} has {len(labels)} label maps but '
                f'SUNRGBDMeta.mat {len(meta)} samples.')
        out = OutputFolder(out_dir, TOOL, [sunrgbd_root, toolbox_root])
        total = len(split['train']) + len(split['test'])
        bar = ProgressBar(total) if progress else None
        for key in ('train', 'test'):
            for n, folder in enumerate(split[key]):
                _convert_sample(out, osp.join(sunrgbd_root, folder),
                                f'{key}_{n}', labels[index_of[folder]],
                                depth_folder, depth_format, copy_intrinsics)
                if bar is not None:
                    bar.update()
    finally:
        labels.close()
    for key in ('train', 'test'):
        out.write_lines(f'{key}.txt', [
            f'RGB/{key}_{n}.jpg\tlabels/{key}_{n}.png\tDepth/{key}_{n}.png'
            for n in range(len(split[key]))
        ])
    print_log(
        f'Wrote {len(split["train"])} train and {len(split["test"])} test '
        f'SUN RGB-D samples to {out_dir} (depth: {depth_folder}, '
        f'{depth_format}).',
        logger='current')
    return split


def _convert_sample(out: OutputFolder, folder: str, name: str,
                    label: np.ndarray, depth_folder: str, depth_format: str,
                    copy_intrinsics: bool) -> None:
    rgb_path = _single_file(osp.join(folder, 'image'), ('.jpg', '.jpeg'))
    depth_path = _single_file(osp.join(folder, depth_folder), ('.png', ))
    stored = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED)
    if stored is None or stored.ndim != 2 or stored.dtype != np.uint16:
        raise ConverterError(f'{depth_path} is not a 16-bit single-channel '
                             'PNG (SUN RGB-D depth).')
    rgb = cv2.imread(rgb_path, cv2.IMREAD_COLOR)
    if rgb is None:
        raise ConverterError(f'{rgb_path} cannot be decoded.')
    shapes = {
        rgb_path: rgb.shape[:2],
        depth_path: stored.shape,
        'its SUNRGBD2Dseg label map': label.shape
    }
    if len(set(shapes.values())) != 1:
        raise ConverterError(f'{folder}: sizes differ: ' +
                             ', '.join(f'{p} {h}x{w}'
                                       for p, (h, w) in shapes.items()))
    mm = decode_depth(stored)
    depth = minmax_uint8(mm) if depth_format == 'minmax8' else mm
    out.copy(f'RGB/{name}.jpg', rgb_path)
    out.write_png(f'Depth/{name}.png', depth)
    out.write_png(f'labels/{name}.png', label)
    if copy_intrinsics:
        out.copy(f'Intrinsics/{name}.txt', osp.join(folder, 'intrinsics.txt'))

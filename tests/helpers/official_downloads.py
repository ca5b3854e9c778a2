"""Tiny files in the exact formats of the official NYU Depth V2 and SUN
RGB-D downloads, for the converter tests.

* :func:`write_nyu_labeled_mat`: ``nyu_depth_v2_labeled.mat`` as MATLAB
  v7.3 writes it: an HDF5 file behind a 512-byte MATLAB header, the arrays
  with their axes reversed (``images`` (N, 3, W, H) uint8, ``depths`` /
  ``rawDepths`` (N, W, H) float32 metres, ``labels`` (N, W, H) uint16),
  ``MATLAB_class`` attributes, and ``names`` as a cell array (object
  references into ``#refs#``).
* :func:`write_sunrgbd_download`: per-sample folders (``image/*.jpg``,
  ``depth/*.png``, ``depth_bfx/*.png`` with the millimetres rotated left by
  3 bits, ``intrinsics.txt``) and the toolbox files: ``SUNRGBDMeta.mat``,
  ``allsplit.mat``, ``seg37list.mat`` (MATLAB v5, scipy) and
  ``SUNRGBD2Dseg.mat`` (v7.3: a struct whose ``seglabel`` field holds
  references to (W, H) label maps).
"""
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

MATLAB_HEADER = (b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: '
                 b'Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .')


def _matlab_class(obj, name: str) -> None:
    obj.attrs['MATLAB_class'] = np.bytes_(name)


def _write_header(path: str) -> None:
    with open(path, 'r+b') as f:
        f.write(
            MATLAB_HEADER.ljust(116, b' ') + b'\x00' * 8 + b'\x00\x02' + b'IM')


def _char_dataset(h5, group, name: str, text: str):
    """A MATLAB char array: uint16 codes, (len, 1) as v7.3 stores it."""
    ds = group.create_dataset(
        name, data=np.array([[ord(c)] for c in text], dtype=np.uint16))
    _matlab_class(ds, 'char')
    return ds.ref


def write_nyu_labeled_mat(path: str,
                          frames: Dict[int, tuple],
                          shape: Tuple[int, int] = (20, 24),
                          num_frames: int = 1449) -> str:
    """Write a small ``nyu_depth_v2_labeled.mat``.

    Args:
        frames: 1-based frame index -> ``(rgb (H, W, 3) uint8, depth
            (H, W) metres, labels (H, W) 0..894)``, in the usual (H, W)
            orientation; the other frames are filled with constants.
        shape: (H, W) of every frame.
    """
    import h5py
    h, w = shape
    images = np.full((num_frames, 3, w, h), 128, np.uint8)
    depths = np.full((num_frames, w, h), 2.5, np.float32)
    labels = np.full((num_frames, w, h), 21, np.uint16)  # wall
    for index, (rgb, depth, label) in frames.items():
        images[index - 1] = rgb.transpose(2, 1, 0)
        depths[index - 1] = depth.T
        labels[index - 1] = label.T
    with h5py.File(path, 'w', userblock_size=512) as f:
        for name, data, cls in (('images', images, 'uint8'), ('depths', depths,
                                                              'single'),
                                ('rawDepths', depths,
                                 'single'), ('labels', labels, 'uint16')):
            ds = f.create_dataset(
                name, data=data, chunks=(1, ) + data.shape[1:])
            _matlab_class(ds, cls)
        refs = f.create_group('#refs#')
        names = [
            _char_dataset(f, refs, f'n{i}', f'class{i}') for i in range(5)
        ]
        ds = f.create_dataset(
            'names', data=np.array([names]), dtype=h5py.ref_dtype)
        _matlab_class(ds, 'cell')
    _write_header(path)
    return path


def rotate_left3(mm: np.ndarray) -> np.ndarray:
    """Millimetres -> the stored values of SUN RGB-D depth PNGs."""
    mm = mm.astype(np.uint16)
    return (mm << 3) | (mm >> 13)


# (folder below SUNRGBD/, image name, (H, W)): sensors of mixed sizes
SUN_SAMPLES = (
    ('kv1/NYUdata/NYU0001', 'NYU0001', (12, 16)),
    ('kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103'
     '-resize', '0000103', (11, 15)),
    ('realsense/lg/2014_10_24-13_29_25-1311000073', '0000022', (9, 14)),
    ('xtion/sun3ddata/mit_76_studyroom/76-1studyroom2/0002111-000070763319',
     '0002111-000070763319', (12, 16)),
    ('kv1/b3dodata/img_0063', 'img_0063', (10, 13)),
)
SEG37 = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
         'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk',
         'shelves', 'curtain', 'dresser', 'pillow', 'mirror', 'floor_mat',
         'clothes', 'ceiling', 'books', 'fridge', 'tv', 'paper', 'towel',
         'shower_curtain', 'box', 'whiteboard', 'person', 'night_stand',
         'toilet', 'sink', 'lamp', 'bathtub', 'bag')


def _cell(strings: Sequence[str]) -> np.ndarray:
    cell = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        cell[0, i] = s
    return cell


def write_sunrgbd_download(root: str,
                           train: Sequence[int] = (2, 0, 4),
                           test: Sequence[int] = (3, 1),
                           seg37: Sequence[str] = SEG37) -> Dict[str, list]:
    """Write ``root/SUNRGBD/...`` and ``root/SUNRGBDtoolbox/...``.

    The metadata lists the test samples first, then the train samples, in
    sample order; ``allsplit.mat`` lists them in the orders ``train`` /
    ``test`` (indices into :data:`SUN_SAMPLES`), so that a converter that
    confused the two orders would pair wrong labels.

    Returns:
        dict: per sample index: ``rgb`` (path), ``mm`` (H, W) uint16
        millimetres of depth_bfx, ``label`` (H, W) uint8 0..37, ``K``.
    """
    import h5py
    import scipy.io
    rng = np.random.default_rng(0)
    data = root + '/SUNRGBD'
    toolbox = root + '/SUNRGBDtoolbox'
    samples = []
    for i, (folder, name, (h, w)) in enumerate(SUN_SAMPLES):
        base = osp.join(data, folder)
        for sub in ('image', 'depth', 'depth_bfx'):
            os.makedirs(osp.join(base, sub))
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb_path = osp.join(base, 'image', name + '.jpg')
        cv2.imwrite(rgb_path, rgb)
        mm = rng.integers(500, 9000, (h, w)).astype(np.uint16)
        mm[0, 0] = 9500 + i  # past 8191 mm: the rotation matters
        raw = mm.copy()
        raw[-1, :] = 0
        cv2.imwrite(
            osp.join(base, 'depth_bfx', name + '.png'), rotate_left3(mm))
        cv2.imwrite(osp.join(base, 'depth', name + '.png'), rotate_left3(raw))
        k = np.array([[50. + i, 0, w / 2], [0, 51. + i, h / 2], [0, 0, 1]])
        np.savetxt(osp.join(base, 'intrinsics.txt'), k, fmt='%.6f')
        label = rng.integers(0, 38, (h, w)).astype(np.uint8)
        label[0, :3] = (1, 2, 22)  # wall, floor, ceiling: not mirrored
        samples.append(dict(rgb=rgb_path, mm=mm, label=label, K=k))
    order = list(test) + list(train)  # the metadata's order
    os.makedirs(osp.join(toolbox, 'Metadata'))
    os.makedirs(osp.join(toolbox, 'traintestSUNRGBD'))
    prefix = '/n/fs/sun3d/data/SUNRGBD/'
    meta = np.zeros((1, len(order)),
                    dtype=[('sequenceName', 'O'), ('rgbpath', 'O'),
                           ('depthpath', 'O'), ('rgbname', 'O'),
                           ('depthname', 'O'), ('K', 'O')])
    for j, i in enumerate(order):
        folder, name, _ = SUN_SAMPLES[i]
        meta[0, j] = (folder, f'{prefix}{folder}/image/{name}.jpg',
                      f'{prefix}{folder}/depth/{name}.png', f'{name}.jpg',
                      f'{name}.png', samples[i]['K'])
    scipy.io.savemat(
        osp.join(toolbox, 'Metadata', 'SUNRGBDMeta.mat'),
        {'SUNRGBDMeta': meta})
    split = {
        'alltrain': _cell([prefix + SUN_SAMPLES[i][0] for i in train]),
        # allsplit.mat paths may end with '/'
        'alltest': _cell([prefix + SUN_SAMPLES[i][0] + '/' for i in test])
    }
    scipy.io.savemat(
        osp.join(toolbox, 'traintestSUNRGBD', 'allsplit.mat'), split)
    scipy.io.savemat(
        osp.join(toolbox, 'Metadata', 'seg37list.mat'),
        {'seg37list': _cell(list(seg37))})
    seg_path = osp.join(toolbox, 'Metadata', 'SUNRGBD2Dseg.mat')
    with h5py.File(seg_path, 'w', userblock_size=512) as f:
        refs = f.create_group('#refs#')
        seglabel = []
        for j, i in enumerate(order):
            ds = refs.create_dataset(
                f'l{j}', data=samples[i]['label'].T.astype(np.float64))
            _matlab_class(ds, 'double')
            seglabel.append([ds.ref])
        struct = f.create_group('SUNRGBD2Dseg')
        _matlab_class(struct, 'struct')
        struct.create_dataset(
            'seglabel', data=np.array(seglabel), dtype=h5py.ref_dtype)
        names = [[_char_dataset(f, refs, f's{k}', n)]
                 for k, n in enumerate(seg37)]
        f.create_dataset(
            'seg37list', data=np.array(names), dtype=h5py.ref_dtype)
    _write_header(seg_path)
    return dict(samples=samples, data=data, toolbox=toolbox)


def sun_order(train: Sequence[int] = (2, 0, 4),
              test: Sequence[int] = (3, 1)) -> List[Tuple[str, int]]:
    """(output name, sample index) in the converter's naming."""
    return ([(f'train_{n}', i)
             for n, i in enumerate(train)] + [(f'test_{n}', i)
                                              for n, i in enumerate(test)])

"""MultiModalFolderDataset: RGB + any aligned sensors, one folder each."""
import os

import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS

from geminifusion_mmseg.datasets import MultiModalFolderDataset


def _write(root, names):
    """rgb/*.jpg, ir/*.png (grey), lidar/*.png (16 bit), labels/*.png."""
    for sub in ('rgb', 'ir', 'lidar', 'labels'):
        os.makedirs(root / sub, exist_ok=True)
    for i, name in enumerate(names):
        os.makedirs((root / 'rgb' / name).parent, exist_ok=True)
        for sub in ('ir', 'lidar', 'labels'):
            os.makedirs((root / sub / name).parent, exist_ok=True)
        cv2.imwrite(
            str(root / 'rgb' / f'{name}.jpg'),
            np.full((8, 10, 3), 10 * i, np.uint8))
        cv2.imwrite(
            str(root / 'ir' / f'{name}.png'),
            np.full((8, 10), 100 + i, np.uint8))
        cv2.imwrite(
            str(root / 'lidar' / f'{name}.png'),
            np.full((8, 10), 3000 + i, np.uint16))
        cv2.imwrite(
            str(root / 'labels' / f'{name}.png'),
            np.full((8, 10), i % 2, np.uint8))


def test_reads_any_sensors_in_list_order(tmp_path):
    init_default_scope('mmseg')
    _write(tmp_path, ['a', 'scene/b'])
    (tmp_path / 'train.txt').write_text('scene/b extra tokens\n\na\n')
    ds = DATASETS.build(
        dict(
            type='MultiModalFolderDataset',
            data_root=str(tmp_path),
            ann_file='train.txt',
            modalities=['rgb', 'lidar', 'thermal'],
            modality_dirs=dict(thermal='ir'),
            img_suffix='.jpg',
            modality_suffixes=dict(lidar='.png', thermal='.png'),
            metainfo=dict(classes=('x', 'y'))))
    assert len(ds) == 2
    info = ds.get_data_info(0)
    assert info['modalities'] == ('rgb', 'lidar', 'thermal')
    assert info['modality_paths']['thermal'].endswith('ir/scene/b.png')
    assert info['seg_map_path'].endswith('labels/scene/b.png')
    load = TRANSFORMS.build(dict(type='LoadMultiModalImageFromFile'))
    img = load(info)['img']
    assert img.shape == (8, 10, 9)
    assert (img[..., 3:6] == 3001).all()  # lidar: 'image', 16 bit as stored
    assert (img[..., 6:9] == 101).all()  # thermal: grey repeated


def test_without_list_or_labels(tmp_path):
    _write(tmp_path, ['b', 'a'])
    ds = MultiModalFolderDataset(
        data_root=str(tmp_path),
        ann_file='',
        img_suffix='.jpg',
        modalities=['rgb', 'ir'],
        modality_suffixes=dict(ir='.png'),
        data_prefix=dict(seg_map_path=None))
    assert [d['img_path'][-5:] for d in ds] == ['a.jpg', 'b.jpg']
    assert 'seg_map_path' not in ds.get_data_info(0)


def test_clear_errors(tmp_path):
    _write(tmp_path, ['a', 'b'])
    (tmp_path / 'val.txt').write_text('a\nb\n')
    os.remove(tmp_path / 'ir' / 'b.png')
    with pytest.raises(
            FileNotFoundError,
            match=r'line 2 of .*val.txt: ir '
            r'file .*ir/b.png does not exist'):
        MultiModalFolderDataset(
            data_root=str(tmp_path),
            ann_file='val.txt',
            img_suffix='.jpg',
            modalities=['rgb', 'ir'],
            modality_suffixes=dict(ir='.png'))
    with pytest.raises(ValueError, match=r"modality_dirs names \['depth'\]"):
        MultiModalFolderDataset(
            data_root=str(tmp_path),
            ann_file='val.txt',
            modalities=['rgb', 'ir'],
            modality_dirs=dict(depth='d'))
    with pytest.raises(ValueError, match="first modality must be 'rgb'"):
        MultiModalFolderDataset(
            data_root=str(tmp_path),
            ann_file='val.txt',
            modalities=['ir', 'rgb'])
    with pytest.raises(FileNotFoundError, match='list file'):
        MultiModalFolderDataset(
            data_root=str(tmp_path), ann_file='missing.txt')
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(ValueError, match='no samples'):
        MultiModalFolderDataset(data_root=str(tmp_path), ann_file='empty.txt')

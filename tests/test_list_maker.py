"""tools/dataset_converters/make_rgbd_lists.py and its library module."""
import os
import os.path as osp
import runpy

import numpy as np
import pytest

from geminifusion_mmseg.datasets import RGBDDataset
from geminifusion_mmseg.datasets.list_maker import (ListMakerError,
                                                    pair_by_stem,
                                                    read_val_list,
                                                    split_by_ratio)
from tests.helpers import label_to_depth
from tests.helpers.custom_rgbd import make_captures, write_capture

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'make_rgbd_lists.py')


@pytest.fixture(scope='module')
def tool_main():
    return runpy.run_path(TOOL, run_name='make_rgbd_lists')['main']


_sample = write_capture


def _captures(root, num=10):
    return make_captures(root, [f'{i:04d}' for i in range(num)])


def _read(path):
    with open(path) as f:
        return [line.rstrip('\n') for line in f]


def test_pairs_reports_unpaired_and_lists_load(tmp_path, tool_main, capsys):
    root = _captures(tmp_path / 'caps', num=8)
    _sample(root, 'scene2/0000', seed=99)  # stems keep sub-folders
    _sample(root, 'no_depth', depth=False)
    _sample(root, 'only_rgb', depth=False, label=False)
    _sample(root, 'no_rgb', rgb=False)
    with open(osp.join(root, 'rgb', 'Thumbs.db'), 'w') as f:
        f.write('not an image')
    assert tool_main([root, '--val-ratio', '0.25', '--seed', '1']) == 0
    out = capsys.readouterr().out
    # every unpaired file by name, with what it lacks
    for line in ('RGB: rgb/no_depth.jpg  (no depth file',
                 'label: label/no_depth.png  (no depth file',
                 'RGB: rgb/only_rgb.jpg  (no depth, label file',
                 'depth: depth/no_rgb.png  (no RGB file',
                 'label: label/no_rgb.png  (no RGB file'):
        assert line in out, out
    assert '5 unpaired file(s)' in out
    assert 'skipped 1 non-image file(s) in the RGB folder' in out
    assert '9 complete samples: 7 train, 2 val' in out
    train = _read(osp.join(root, 'train.txt'))
    val = _read(osp.join(root, 'val.txt'))
    assert len(train) == 7 and len(val) == 2
    lines = train + val
    assert sorted(lines) == sorted(set(lines))
    assert 'rgb/scene2/0000.jpg\tlabel/scene2/0000.png\t' \
        'depth/scene2/0000.png' in lines
    assert not any('no_' in line or 'only' in line for line in lines)
    # the lists load in RGBDDataset, and the modalities belong together
    for name, n in (('train.txt', 7), ('val.txt', 2)):
        ds = RGBDDataset(
            data_root=root,
            ann_file=name,
            metainfo=dict(classes=tuple('abcde')),
            pipeline=[
                dict(type='LoadRGBDImageFromFile'),
                dict(type='LoadRGBDAnnotations')
            ])
        assert len(ds) == n
        results = ds[0]
        np.testing.assert_array_equal(
            label_to_depth(results['gt_seg_map'], 16),
            results['img'][..., 3].astype(np.uint16))


def test_refuses_duplicates(tmp_path, tool_main, capsys):
    root = _captures(tmp_path / 'caps', num=4)
    _sample(root, '0001', depth=False, label=False, rgb_ext='.png')
    _sample(root, 'lonely', rgb=False, depth=False)
    assert tool_main([root]) == 1
    captured = capsys.readouterr()
    assert "duplicate RGB stem '0001': rgb/0001.jpg, rgb/0001.png" in \
        captured.err
    assert 'label: label/lonely.png' in captured.out  # still reported
    assert not osp.exists(osp.join(root, 'train.txt'))
    assert not osp.exists(osp.join(root, 'val.txt'))
    pairing = pair_by_stem(root)
    assert [s.stem for s in pairing.samples] == ['0000', '0002', '0003']
    with pytest.raises(ListMakerError, match='duplicate RGB stem'):
        pairing.check()


def test_val_list(tmp_path, tool_main, capsys):
    root = _captures(tmp_path / 'caps', num=6)
    val_list = tmp_path / 'val_names.txt'
    # a stem, a file name, a path in the RGB folder, a 3-column line
    val_list.write_text('0001\n\n0003.jpg\n# comment\nrgb/0004.jpg\n'
                        'rgb/0005.jpg\tlabel/0005.png\tdepth/0005.png\n')
    out_dir = tmp_path / 'lists'
    assert tool_main(
        [root, '--val-list',
         str(val_list), '--out-dir',
         str(out_dir)]) == 0
    val = _read(out_dir / 'val.txt')
    assert [line.split('\t')[0] for line in val] == [
        'rgb/0001.jpg', 'rgb/0003.jpg', 'rgb/0004.jpg', 'rgb/0005.jpg'
    ]
    assert len(_read(out_dir / 'train.txt')) == 2
    assert not osp.exists(osp.join(root, 'train.txt'))
    # a sample named twice: refused, nothing written
    dup = tmp_path / 'dup.txt'
    dup.write_text('0001\n0002\nrgb/0001.jpg\n')
    with pytest.raises(ListMakerError, match="line 3: 'rgb/0001.jpg'"):
        read_val_list(str(dup))
    assert tool_main([root, '--val-list', str(dup)]) == 1
    assert 'names samples twice' in capsys.readouterr().err
    assert not osp.exists(osp.join(root, 'train.txt'))
    # an unknown sample
    unknown = tmp_path / 'unknown.txt'
    unknown.write_text('0001\nnope\n')
    assert tool_main([root, '--val-list', str(unknown)]) == 1
    assert "'nope'" in capsys.readouterr().err


def test_split_is_reproducible_with_a_seed(tmp_path, tool_main):
    root = _captures(tmp_path / 'caps', num=20)
    samples = pair_by_stem(root).samples

    def split(seed):
        return [[s.stem for s in part]
                for part in split_by_ratio(samples, 0.25, seed)]

    assert split(0) == split(0)
    assert split(0) != split(1)
    train, val = split(0)
    assert len(val) == 5 and sorted(train + val) == sorted(s.stem
                                                           for s in samples)
    # the input order does not matter
    assert [[s.stem for s in p]
            for p in split_by_ratio(samples[::-1], 0.25, 0)] == split(0)
    # through the tool: same seed -> same files; existing lists are kept
    # unless --overwrite
    assert tool_main([root, '--val-ratio', '0.25', '--seed', '3']) == 0
    first = _read(osp.join(root, 'val.txt'))
    assert tool_main([root, '--val-ratio', '0.25', '--seed', '3']) == 1
    assert tool_main(
        [root, '--val-ratio', '0.25', '--seed', '3', '--overwrite']) == 0
    assert _read(osp.join(root, 'val.txt')) == first
    assert tool_main(
        [root, '--val-ratio', '0.25', '--seed', '4', '--overwrite']) == 0
    assert _read(osp.join(root, 'val.txt')) != first


def test_strict_and_bad_names(tmp_path, tool_main, capsys):
    root = _captures(tmp_path / 'caps', num=3)
    _sample(root, 'no_label', label=False)
    assert tool_main([root, '--strict']) == 1
    assert 'unpaired RGB file rgb/no_label.jpg (no label)' in \
        capsys.readouterr().err
    os.remove(osp.join(root, 'rgb', 'no_label.jpg'))
    os.remove(osp.join(root, 'depth', 'no_label.png'))
    _sample(root, 'with space')
    assert tool_main([root]) == 1
    assert 'whitespace in file name' in capsys.readouterr().err
    assert tool_main([str(tmp_path / 'missing')]) == 1
    assert 'does not exist' in capsys.readouterr().err

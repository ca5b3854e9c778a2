"""tools/dataset_converters/nyudv2.py and sunrgbd.py: official downloads ->
the layouts the datasets read (tiny files in the real formats)."""
import os
import os.path as osp
import runpy

import cv2
import numpy as np
import pytest

from geminifusion_mmseg.datasets import (NYUDV2_CLASSES, NYUDv2Dataset,
                                         SUNRGBDDataset)
from geminifusion_mmseg.datasets.converters import (ConverterError,
                                                    OutputFolder,
                                                    convert_nyudv2,
                                                    convert_sunrgbd,
                                                    decode_depth)
from geminifusion_mmseg.datasets.converters.sunrgbd import SUNRGBD_SEG37
# yapf: disable
from geminifusion_mmseg.datasets.nyudv2_meta import (NYU894_TO_40,
                                                     NYU_RGB_DISTORTION,
                                                     NYU_RGB_INTRINSICS,
                                                     NYU_TEST_FRAMES,
                                                     NYU_TRAIN_FRAMES,
                                                     RELEASED_BORDER)
# yapf: enable
from geminifusion_mmseg.utils.atomic_io import is_temp_file_name
from tests.helpers.official_downloads import (SEG37, rotate_left3, sun_order,
                                              write_nyu_labeled_mat,
                                              write_sunrgbd_download)

pytest.importorskip('h5py')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools', 'dataset_converters')
# 894-class ids of the real classMapping40.mat / names: wall, floor, ceiling
WALL, FLOOR, CEILING = 21, 11, 4


def _nyu_meta_dir():
    """The team's real NYUv2 metadata (shared/data/nyuv2-meta beside an
    ancestor of the checkout); None where it is not there."""
    env = os.environ.get('NYUV2_META_DIR')
    if env:
        return env
    path = REPO
    while True:
        cand = osp.join(path, 'shared', 'data', 'nyuv2-meta')
        if osp.isdir(cand):
            return cand
        parent = osp.dirname(path)
        if parent == path:
            return None
        path = parent


def _real_meta(name):
    meta = _nyu_meta_dir()
    if meta is None or not osp.isfile(osp.join(meta, name)):
        pytest.skip(f'the real {name} (shared/data/nyuv2-meta) is not here')
    import scipy.io
    return scipy.io.loadmat(osp.join(meta, name))


def _read(path):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    return img[..., ::-1] if img.ndim == 3 else img


# --- facts carried by the package, against the real files ------------------


def test_class_mapping_is_the_real_classmapping40():
    mat = _real_meta('classMapping40.mat')
    assert list(NYU894_TO_40) == mat['mapClass'][0].tolist()
    names = [str(n[0]) for n in mat['className'][0]]
    # the file spells 'refridgerator'
    assert names == [('refridgerator' if n == 'refrigerator' else n)
                     for n in NYUDV2_CLASSES]
    all_names = [str(n[0]) for n in mat['allClassName'][0]]
    for name, k in (('wall', WALL), ('floor', FLOOR), ('ceiling', CEILING)):
        assert all_names[k - 1] == name
        assert NYUDV2_CLASSES[NYU894_TO_40[k - 1] - 1] == name


def test_split_is_the_real_splits_mat():
    mat = _real_meta('splits.mat')
    assert list(NYU_TEST_FRAMES) == mat['testNdxs'][:, 0].tolist()
    assert list(NYU_TRAIN_FRAMES) == mat['trainNdxs'][:, 0].tolist()
    assert (len(NYU_TRAIN_FRAMES), len(NYU_TEST_FRAMES)) == (795, 654)


def _largest_valid_rectangle(valid):
    """(top, bottom, left, right) of the largest all-True rectangle."""
    h, w = valid.shape
    best = (0, None)
    for top in range(20):
        for bottom in range(20):
            cols = np.flatnonzero(valid[top:h - bottom].all(axis=0))
            if not len(cols):
                continue
            runs = np.split(cols, np.flatnonzero(np.diff(cols) != 1) + 1)
            run = max(runs, key=len)
            area = (h - top - bottom) * len(run)
            if area > best[0]:
                best = (area, (top, bottom, int(run[0]), w - 1 - int(run[-1])))
    return best[1]


def test_released_border_is_the_undistortion_border():
    """The largest rectangle inside the valid region of the RGB
    undistortion is 468x625, the size of the released images, at the
    offsets of TokenFusion's centre crop (CropAlignToMask)."""
    fx, fy, cx, cy = NYU_RGB_INTRINSICS
    # the same with a 1-based (MATLAB) or 0-based (OpenCV) principal point
    for offset in (0, 1):
        k = np.array([[fx, 0, cx - offset], [0, fy, cy - offset], [0, 0, 1]])
        mx, my = cv2.initUndistortRectifyMap(k, np.array(NYU_RGB_DISTORTION),
                                             None, k, (640, 480), cv2.CV_32FC1)
        valid = (mx >= 0) & (mx <= 639) & (my >= 0) & (my <= 479)
        assert _largest_valid_rectangle(valid) == RELEASED_BORDER
    top, bottom, left, right = RELEASED_BORDER
    assert (480 - top - bottom, 640 - left - right) == (468, 625)
    assert (top, left) == ((480 - 468) // 2, (640 - 625) // 2)


# --- NYU Depth V2 ----------------------------------------------------------


def _asymmetric_frame(shape, seed):
    """RGB, depth and labels no flip or transpose maps onto themselves."""
    h, w = shape
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red top-left
    rgb[-1, -1] = (0, 0, 255)  # blue bottom-right
    depth = rng.uniform(0.5, 9.5, (h, w)).astype(np.float32)
    depth[0, 0] = 1.2344  # 1234 mm
    depth[0, 1] = 1.2346  # 1235 mm
    depth[1, 0] = 0.  # missing
    labels = np.zeros((h, w), np.uint16)  # unlabelled
    labels[:h // 2, :w // 3] = WALL
    labels[h // 2:, :] = FLOOR
    labels[:3, w - 4:] = CEILING
    labels[-1, 0] = 894
    return rgb, depth, labels


@pytest.fixture(scope='module')
def nyu_mat(tmp_path_factory):
    shape = (20, 24)
    frames = {i: _asymmetric_frame(shape, i) for i in (1, 2, 3, 9)}
    path = str(tmp_path_factory.mktemp('nyu') / 'nyu_depth_v2_labeled.mat')
    write_nyu_labeled_mat(path, frames, shape)
    return path, frames


def _expected_masks(labels):
    lut = np.full(895, 255, np.uint8)
    lut[1:] = np.array(NYU894_TO_40) - 1
    return lut[labels]


def test_nyu_orientation_units_mapping_split(nyu_mat, tmp_path):
    mat, frames = nyu_mat
    out = str(tmp_path / 'nyudv2')
    split = convert_nyudv2(mat, out, frames=[1, 2, 3, 9], progress=False)
    assert split == {'train': [3], 'val': [1, 2, 9]}
    for index, (rgb, depth, labels) in frames.items():
        name = f'{index:06d}.png'
        out_rgb = _read(osp.join(out, 'rgb', name))
        np.testing.assert_array_equal(out_rgb, rgb)  # upright, RGB order
        assert tuple(out_rgb[0, 0]) == (255, 0, 0)
        out_depth = _read(osp.join(out, 'depth', name))
        assert out_depth.dtype == np.uint16
        np.testing.assert_array_equal(out_depth,
                                      np.rint(depth * 1000).astype(int))
        assert out_depth[0, :2].tolist() == [1234, 1235]
        assert out_depth[1, 0] == 0
        masks = _read(osp.join(out, 'masks', name))
        assert masks.dtype == np.uint8
        np.testing.assert_array_equal(masks, _expected_masks(labels))
        # wall 0, floor 1, ceiling 21, unlabelled 255, where they were put
        assert masks[0, 0] == 0 and masks[-2, -1] == 1
        assert masks[0, -1] == 21 and masks[0, -5] == 255
        assert masks[-1, 0] == NYU894_TO_40[893] - 1
    with open(osp.join(out, 'val.txt')) as f:
        assert f.read().splitlines() == [
            f'rgb/{n}.png\tmasks/{n}.png\tdepth/{n}.png'
            for n in ('000001', '000002', '000009')
        ]
    with open(osp.join(out, 'train.txt')) as f:
        assert f.read() == ('rgb/000003.png\tmasks/000003.png\t'
                            'depth/000003.png\n')
    # the dataset and its loader read the output as it is
    ds = NYUDv2Dataset(
        data_root=out,
        ann_file='val.txt',
        pipeline=[
            dict(type='LoadRGBDImageFromFile'),
            dict(type='LoadRGBDAnnotations')
        ])
    sample = ds[2]
    assert sample['img_path'].endswith('000009.png')
    np.testing.assert_array_equal(sample['img'][..., 0], frames[9][0][..., 0])
    np.testing.assert_array_equal(sample['img'][..., 3],
                                  np.rint(frames[9][1] * 1000))
    np.testing.assert_array_equal(sample['gt_seg_map'],
                                  _expected_masks(frames[9][2]))


def test_nyu_crop_border_as_released(nyu_mat, tmp_path):
    mat, frames = nyu_mat
    rgb, depth, labels = frames[3]
    out = str(tmp_path / 'cropped')
    convert_nyudv2(mat, out, crop=True, frames=[3], progress=False)
    top, bottom, left, right = RELEASED_BORDER
    window = np.s_[top:20 - bottom, left:24 - right]
    np.testing.assert_array_equal(
        _read(osp.join(out, 'rgb', '000003.png')), rgb[window])
    np.testing.assert_array_equal(
        _read(osp.join(out, 'masks', '000003.png')),
        _expected_masks(labels)[window])
    # depth keeps the full frame, as in the released copy
    assert _read(osp.join(out, 'depth', '000003.png')).shape == (20, 24)
    # another border
    out2 = str(tmp_path / 'cropped2')
    convert_nyudv2(
        mat, out2, crop=True, border=(1, 2, 3, 4), frames=[3], progress=False)
    np.testing.assert_array_equal(
        _read(osp.join(out2, 'rgb', '000003.png')), rgb[1:18, 3:20])
    with pytest.raises(ConverterError, match='leaves nothing'):
        convert_nyudv2(
            mat,
            str(tmp_path / 'c3'),
            crop=True,
            border=(10, 10, 0, 0),
            frames=[3],
            progress=False)


def test_nyu_refuses_bad_input_and_unsafe_output(nyu_mat, tmp_path, capsys):
    mat, _ = nyu_mat
    main = runpy.run_path(osp.join(TOOLS, 'nyudv2.py'), run_name='x')['main']
    # OUT == input
    assert main([mat, mat, '--frames', '1']) == 1
    assert 'is the input' in capsys.readouterr().err
    # a non-empty folder it did not create
    foreign = tmp_path / 'mine'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('keep me')
    assert main([mat, str(foreign), '--frames', '1']) == 1
    err = capsys.readouterr().err
    assert str(foreign) in err and 'not empty' in err
    assert sorted(os.listdir(foreign)) == ['notes.txt']
    # its own output is redone in place
    out = str(tmp_path / 'out')
    assert main([mat, out, '--frames', '1-2']) == 0
    assert main([mat, out, '--frames', '9']) == 0
    assert sorted(os.listdir(osp.join(
        out, 'rgb'))) == ['000001.png', '000002.png', '000009.png']
    capsys.readouterr()
    assert main([mat, str(tmp_path / 'o2'), '--frames', 'x']) == 1
    assert 'Bad frame list' in capsys.readouterr().err
    # not the official file
    other = str(tmp_path / 'other.mat')
    import h5py
    with h5py.File(other, 'w') as f:
        f['images'] = np.zeros((3, 3, 4, 5), np.uint8)
    with pytest.raises(ConverterError, match='depths'):
        convert_nyudv2(other, str(tmp_path / 'o3'), progress=False)
    with pytest.raises(ConverterError, match='not a MATLAB v7.3'):
        convert_nyudv2(
            osp.join(TOOLS, 'nyudv2.py'), str(tmp_path / 'o4'), progress=False)


def test_output_writes_are_atomic(tmp_path):
    out = OutputFolder(str(tmp_path / 'o'), 'test', [])

    def half_then_fail(tmp):
        with open(tmp, 'w') as f:
            f.write('half a file')
        raise OSError('No space left on device')

    out.write_lines('a/list.txt', ['old'])
    with pytest.raises(OSError, match='No space'):
        out.write('a/list.txt', half_then_fail)
    # the previous complete file is intact, no temporary file is left
    assert os.listdir(tmp_path / 'o' / 'a') == ['list.txt']
    assert (tmp_path / 'o' / 'a' / 'list.txt').read_text() == 'old\n'
    # a folder made by another converter is refused
    with pytest.raises(ConverterError, match='made by test'):
        OutputFolder(str(tmp_path / 'o'), 'nyudv2', [])
    (tmp_path / 'f').write_text('x')
    with pytest.raises(ConverterError, match='not a folder'):
        OutputFolder(str(tmp_path / 'f'), 'test', [])


@pytest.mark.parametrize('umask,mode', [(0o022, 0o644), (0o027, 0o640)])
def test_converter_outputs_follow_the_umask(nyu_mat, tmp_path, umask, mode):
    """Converted files get 0o666 minus the umask (as open() gives), not
    mkstemp's 0o600; temporary files use atomic_io's names, so a killed
    run's leftovers are removed when the converter runs again."""
    mat, _ = nyu_mat
    out = str(tmp_path / 'nyudv2')
    old = os.umask(umask)
    try:
        convert_nyudv2(mat, out, frames=[1, 3], progress=False)
    finally:
        os.umask(old)
    files = [osp.join(d, f) for d, _, names in os.walk(out) for f in names]
    assert len(files) >= 7  # marker, lists, rgb/depth/label of 2 frames
    assert {f: os.stat(f).st_mode & 0o777 for f in files} == \
        {f: mode for f in files}
    leftover = osp.join(out, 'rgb', '.000001.png.0a1b2c3d.tmp.png')
    open(leftover, 'wb').write(b'half a png')
    assert is_temp_file_name(osp.basename(leftover))
    convert_nyudv2(mat, out, frames=[1, 3], progress=False)
    assert not osp.exists(leftover)
    assert sorted(os.listdir(osp.join(out, 'rgb'))) == \
        ['000001.png', '000003.png']


# --- SUN RGB-D -------------------------------------------------------------


@pytest.fixture(scope='module')
def sun_download(tmp_path_factory):
    return write_sunrgbd_download(str(tmp_path_factory.mktemp('sun')))


def test_sun_depth_decoding():
    mm = np.array([[0, 1, 1000, 8191, 8192, 9500, 65535]], np.uint16)
    np.testing.assert_array_equal(decode_depth(rotate_left3(mm)), mm)
    assert SUNRGBD_SEG37 == SEG37


def test_sun_layout_order_labels_and_depth(sun_download, tmp_path):
    out = str(tmp_path / 'sun')
    split = convert_sunrgbd(
        sun_download['data'],
        sun_download['toolbox'],
        out,
        copy_intrinsics=True,
        progress=False)
    assert len(split['train']) == 3 and len(split['test']) == 2
    samples = sun_download['samples']
    for name, i in sun_order():
        s = samples[i]
        with open(s['rgb'],
                  'rb') as a, open(osp.join(out, 'RGB', name + '.jpg'),
                                   'rb') as b:
            assert a.read() == b.read()  # the JPEG, byte for byte
        label = _read(osp.join(out, 'labels', name + '.png'))
        np.testing.assert_array_equal(label, s['label'])  # upright
        assert label[0, :3].tolist() == [1, 2, 22]
        depth = _read(osp.join(out, 'Depth', name + '.png'))
        assert depth.dtype == np.uint8 and depth.shape == s['mm'].shape
        mm = s['mm'].astype(float)
        expected = np.rint((mm - mm.min()) / (mm.max() - mm.min()) * 255)
        np.testing.assert_array_equal(depth, expected)
        assert depth[0, 0] == 255  # the > 8191 mm pixel is the farthest
        np.testing.assert_allclose(
            np.loadtxt(osp.join(out, 'Intrinsics', name + '.txt')), s['K'])
    with open(osp.join(out, 'test.txt')) as f:
        assert f.read().splitlines() == [
            f'RGB/test_{n}.jpg\tlabels/test_{n}.png\tDepth/test_{n}.png'
            for n in range(2)
        ]
    # SUNRGBDDataset reads it: 0 -> 255, v -> v - 1
    ds = SUNRGBDDataset(
        data_root=out,
        ann_file='train.txt',
        pipeline=[
            dict(type='LoadRGBDImageFromFile'),
            dict(type='LoadRGBDAnnotations')
        ])
    sample = ds[0]
    label = samples[2]['label'].astype(int) - 1
    label[label < 0] = 255
    np.testing.assert_array_equal(sample['gt_seg_map'], label)


def test_sun_metric_depth_and_raw_folder(sun_download, tmp_path):
    out = str(tmp_path / 'sun16')
    convert_sunrgbd(
        sun_download['data'],
        sun_download['toolbox'],
        out,
        depth_folder='depth',
        depth_format='mm16',
        progress=False)
    for name, i in sun_order():
        depth = _read(osp.join(out, 'Depth', name + '.png'))
        expected = sun_download['samples'][i]['mm'].copy()
        expected[-1, :] = 0  # the raw depth's holes
        assert depth.dtype == np.uint16
        np.testing.assert_array_equal(depth, expected)


def test_sun_refuses_inconsistent_downloads(sun_download, tmp_path):
    root = str(tmp_path / 'bad')
    write_sunrgbd_download(root, seg37=SEG37[1:] + SEG37[:1])
    with pytest.raises(ConverterError, match='mislabelled'):
        convert_sunrgbd(
            root + '/SUNRGBD',
            root + '/SUNRGBDtoolbox',
            str(tmp_path / 'o1'),
            progress=False)
    with pytest.raises(ConverterError, match='is the input'):
        convert_sunrgbd(
            sun_download['data'],
            sun_download['toolbox'],
            sun_download['data'],
            progress=False)
    # a label map that does not fit its image names the sample
    root2 = str(tmp_path / 'bad2')
    write_sunrgbd_download(root2)
    img = osp.join(root2, 'SUNRGBD', 'kv1/NYUdata/NYU0001', 'image',
                   'NYU0001.jpg')
    cv2.imwrite(img, np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ConverterError, match='NYU0001: sizes differ'):
        convert_sunrgbd(
            root2 + '/SUNRGBD',
            root2 + '/SUNRGBDtoolbox',
            str(tmp_path / 'o2'),
            progress=False)
    main = runpy.run_path(osp.join(TOOLS, 'sunrgbd.py'), run_name='x')['main']
    assert main([
        str(tmp_path / 'nowhere'), sun_download['toolbox'],
        str(tmp_path / 'o3')
    ]) == 1

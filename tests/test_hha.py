"""HHA: depth_to_hha on a synthetic room with known channels, against the
literal transcription of the authors' code, the DepthToHHA transform and
tools/dataset_converters/depth2hha.py."""
import os
import os.path as osp
import runpy

import cv2
import numpy as np
import pytest

from geminifusion_mmseg.datasets.converters import read_rotations
from geminifusion_mmseg.datasets.transforms import (DepthToHHA,
                                                    LoadRGBDImageFromFile,
                                                    depth_to_hha)
from geminifusion_mmseg.datasets.transforms.hha import (estimate_gravity,
                                                        gravity_from_rotation,
                                                        point_cloud,
                                                        surface_normals)
from geminifusion_mmseg.testing.literal_hha import save_hha

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'dataset_converters', 'depth2hha.py')
SHAPE = (90, 120)
K = (60., 60., 60.5, 45.5)  # fx, fy, cx, cy (1-based principal point)
CAMERA_HEIGHT = 150.  # cm above the floor
CEILING = 250.  # cm above the floor
BOX = dict(x=(-60., 60.), z=(150., 250.), top=80.)  # cm, on the floor


def _rot_x(degrees):
    t = np.deg2rad(degrees)
    return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)],
                     [0, np.sin(t), np.cos(t)]])


def make_room(pitch=0.):
    """Depth (metres) of a room seen by a camera pitched down by ``pitch``
    degrees, and a (H, W) map of what each pixel sees.

    World frame: y down (gravity), camera at the origin, floor at
    y = +150 cm, ceiling at y = -100, walls at x = -200 / +250 and
    z = 400 cm, a box on the floor (top 80 cm above it). A camera ray d
    has the world direction ``R d`` with R the pitch rotation, so the
    camera-to-gravity rotation of this view is R.
    """
    h, w = SHAPE
    fx, fy, cx, cy = K
    u = (np.arange(1, w + 1) - cx) / fx
    v = (np.arange(1, h + 1) - cy) / fy
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], 1.), -1)
    rotation = _rot_x(-pitch)  # camera z towards +y (down) for pitch > 0
    d = rays @ rotation.T  # world directions
    best = np.full((h, w), np.inf)
    what = np.zeros((h, w), object)
    floor_y = CAMERA_HEIGHT
    top_y = CAMERA_HEIGHT - BOX['top']
    planes = [('floor', 1, floor_y), ('ceiling', 1, CAMERA_HEIGHT - CEILING),
              ('wall', 0, -200.), ('wall', 0, 250.), ('wall', 2, 400.),
              ('box_top', 1, top_y), ('box_front', 2, BOX['z'][0])]
    with np.errstate(divide='ignore', invalid='ignore'):
        for name, axis, value in planes:
            t = value / d[..., axis]
            p = d * t[..., None]
            ok = t > 0
            if name.startswith('box'):
                ok &= (p[..., 0] >= BOX['x'][0]) & (p[..., 0] <= BOX['x'][1])
                if name == 'box_top':
                    ok &= (p[..., 2] >= BOX['z'][0]) & (
                        p[..., 2] <= BOX['z'][1])
                else:
                    ok &= (p[..., 1] >= top_y) & (p[..., 1] <= floor_y)
            closer = ok & (t < best)
            best[closer] = t[closer]
            what[closer] = name
    depth_cm = best * rays[..., 2]  # t along a ray with camera z = 1
    return depth_cm / 100., what, rotation


def _interior(what, name, margin=3):
    """Pixels of ``name`` whose (2 margin + 1)^2 window sees only it."""
    mask = (what == name).astype(np.uint8)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(mask, kernel, borderValue=0).astype(bool)


@pytest.fixture(scope='module')
def room():
    return make_room()


def test_room_channels_are_known(room):
    depth, what, rotation = room
    # the true gravity (estimating it is tested below)
    hha = depth_to_hha(
        depth, K, gravity=gravity_from_rotation(rotation), as_uint8=False)
    disparity, height, angle = (hha[..., c] for c in range(3))
    np.testing.assert_allclose(
        disparity, 31000. / np.maximum(depth * 100., 100.), rtol=1e-6)
    expected = {  # (height above the floor cm, angle + 38)
        'floor': (0., 38.),
        'box_top': (BOX['top'], 38.),
        'ceiling': (CEILING, 218.),
        'wall': (None, 128.),
        'box_front': (None, 128.)
    }
    for name, (h, a) in expected.items():
        inside = _interior(what, name)
        assert inside.sum() > 10, name
        np.testing.assert_allclose(angle[inside], a, atol=1e-3, err_msg=name)
        if h is not None:
            np.testing.assert_allclose(
                height[inside], h, atol=1e-3, err_msg=name)
    # walls: the height of each point above the floor
    points = point_cloud(depth * 100., K)
    inside = _interior(what, 'wall')
    np.testing.assert_allclose(
        height[inside], CAMERA_HEIGHT - points[..., 1][inside], atol=1e-3)


def test_gravity_is_estimated_and_given_rotation_is_used():
    depth, what, rotation = make_room(pitch=12.)
    true = gravity_from_rotation(rotation)  # second row: world y in camera
    np.testing.assert_allclose(
        true, [0, np.cos(np.deg2rad(12.)),
               np.sin(np.deg2rad(12.))])
    points = point_cloud(depth * 100., K)
    gravity = estimate_gravity(surface_normals(points, depth == 0, 10))
    # within a degree: the normals of windows across two planes pull it
    assert np.degrees(np.arccos(gravity @ true)) < 1.
    hha = depth_to_hha(depth, K, gravity=true, as_uint8=False)
    floor = _interior(what, 'floor')
    ceiling = _interior(what, 'ceiling')
    np.testing.assert_allclose(hha[..., 1][floor], 0., atol=1e-3)
    np.testing.assert_allclose(hha[..., 2][floor], 38., atol=1e-3)
    np.testing.assert_allclose(hha[..., 1][ceiling], CEILING, atol=1e-3)
    np.testing.assert_allclose(hha[..., 2][ceiling], 218., atol=1e-3)
    estimated = depth_to_hha(depth, K, as_uint8=False)
    np.testing.assert_allclose(estimated[..., 2][floor], 38., atol=1.)
    # the camera's own y axis is 12 degrees off: the rotation is used
    level = depth_to_hha(depth, K, gravity=(0., 1., 0.), as_uint8=False)
    np.testing.assert_allclose(level[..., 2][floor], 50., atol=1e-3)


def _camera_matrix(k):
    fx, fy, cx, cy = k
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.]])


@pytest.mark.parametrize('case', ['room', 'tilted_with_holes', 'gravity'])
def test_matches_the_literal_authors_code(case):
    depth, what, rotation = make_room(pitch=0. if case == 'room' else 8.)
    raw = depth.copy()
    if case != 'room':
        rng = np.random.default_rng(0)
        raw[rng.random(depth.shape) < 0.05] = 0  # missing measurements
        raw[20:26, 30:37] = 0  # a hole
    gravity = gravity_from_rotation(rotation) if case == 'gravity' else None
    ours = depth_to_hha(
        depth, K, missing=raw == 0, gravity=gravity, as_uint8=False)
    ref = save_hha(
        _camera_matrix(K),
        depth * 1000,
        raw * 1000,
        yDir=gravity,
        as_uint8=False)
    np.testing.assert_allclose(
        ours[..., :2], ref[..., :2], rtol=1e-6, atol=1e-4)
    # the angle: equal but where a window is nearly degenerate (a few
    # points next to a hole), where the two summation orders round apart
    close = np.isclose(ours[..., 2], ref[..., 2], rtol=1e-6, atol=1e-4)
    assert close.mean() > 0.999
    if case == 'room':
        assert close.all()
    ours8 = depth_to_hha(depth, K, missing=raw == 0, gravity=gravity)
    ref8 = save_hha(_camera_matrix(K), depth * 1000, raw * 1000, gravity)
    assert ours8.dtype == ref8.dtype == np.uint8
    diff = np.abs(ours8.astype(int) - ref8.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_depth_to_hha_refuses_bad_input():
    with pytest.raises(ValueError, match='NaN'):
        depth_to_hha(np.full(SHAPE, np.nan), K)
    with pytest.raises(ValueError, match='Unknown intrinsics'):
        depth_to_hha(np.ones(SHAPE), 'kinect')
    with pytest.raises(ValueError, match='shape'):
        depth_to_hha(np.ones(SHAPE), K, missing=np.zeros((3, 3), bool))


def _write_rgbd(root, name, depth_m, size=SHAPE):
    os.makedirs(osp.join(root, 'rgb'), exist_ok=True)
    os.makedirs(osp.join(root, 'depth'), exist_ok=True)
    rgb = np.random.default_rng(1).integers(0, 256, size + (3, ), np.uint8)
    cv2.imwrite(osp.join(root, 'rgb', name), rgb)
    mm = np.rint(depth_m * 1000).astype(np.uint16)
    cv2.imwrite(osp.join(root, 'depth', name), mm)
    return rgb[..., ::-1], mm


def test_transform_replaces_the_depth_channels(room, tmp_path):
    depth, _, _ = room
    rgb, mm = _write_rgbd(str(tmp_path), 'a.png', depth)
    results = LoadRGBDImageFromFile()(
        dict(
            img_path=str(tmp_path / 'rgb' / 'a.png'),
            depth_path=str(tmp_path / 'depth' / 'a.png')))
    out = DepthToHHA(intrinsics=list(K))(dict(results))
    np.testing.assert_array_equal(out['img'][..., :3], rgb)
    np.testing.assert_array_equal(out['img'][..., 3:],
                                  depth_to_hha(mm / 1000., K))
    # the same with the camera as a 3x3 matrix and in a K-modality image
    multi = dict(
        img=np.concatenate(
            [results['img'][..., :3]] * 2 + [results['img'][..., 3:]], axis=2),
        modalities=('rgb', 'event', 'depth'))
    out2 = DepthToHHA(intrinsics=_camera_matrix(K).tolist())(multi)
    np.testing.assert_array_equal(out2['img'][..., 6:], out['img'][..., 3:])
    np.testing.assert_array_equal(out2['img'][..., :6], multi['img'][..., :6])
    # refusals: wrong camera size, after a resize, an HHA / non-raw input
    with pytest.raises(ValueError, match='480x640'):
        DepthToHHA(intrinsics='nyu')(dict(results))
    resized = dict(results, ori_shape=(120, 160))
    with pytest.raises(ValueError, match='right after the loader'):
        DepthToHHA(intrinsics=K)(resized)
    bad = dict(results, img=results['img'].copy())
    bad['img'][..., 4] += 1
    with pytest.raises(ValueError, match="'raw' encoding"):
        DepthToHHA(intrinsics=K)(bad)
    with pytest.raises(KeyError, match='no modality'):
        DepthToHHA(intrinsics=K, modality='lidar')(dict(multi))


def test_read_rotations_formats(tmp_path):
    r = _rot_x(5.)
    path = tmp_path / 'rot.txt'
    path.write_text('\n'.join(' '.join(f'{v:g}' for v in row) for row in r) +
                    '\n\n' + '\n'.join(' '.join(f'{v:g}' for v in row) + ' 0'
                                       for row in r.T) + '\n')
    mats = read_rotations(str(path))
    np.testing.assert_allclose(mats, [r, r.T], atol=1e-5)
    meta = None
    path_up = REPO
    while meta is None and osp.dirname(path_up) != path_up:
        cand = osp.join(path_up, 'shared', 'data', 'nyuv2-meta',
                        'camera_rotations_NYU.txt')
        meta = cand if osp.isfile(cand) else None
        path_up = osp.dirname(path_up)
    if meta is not None:  # the real file: 1449 rotations, camera looks down
        real = read_rotations(meta)
        assert real.shape == (1449, 3, 3)
        down = np.array([gravity_from_rotation(m)[2] for m in real])
        assert (down > 0).mean() > 0.8


def test_depth2hha_tool(tmp_path, capsys):
    main = runpy.run_path(TOOL, run_name='depth2hha')['main']
    level, _, _ = make_room()
    tilted, _, rotation = make_room(pitch=10.)
    src = tmp_path / 'depth'
    src.mkdir()
    for name, d in (('000001.png', level), ('000002.png', tilted)):
        cv2.imwrite(str(src / name), np.rint(d * 1000).astype(np.uint16))
    rot = tmp_path / 'rot.txt'
    # three rotations: by the frame number in the names
    rot.write_text('\n\n'.join('\n'.join(' '.join(f'{v:.9f}' for v in row)
                                         for row in m)
                               for m in (np.eye(3), rotation, np.eye(3))))
    k = ','.join(map(str, K))
    out = tmp_path / 'hha'
    assert main(
        [str(src),
         str(out), '--intrinsics', k, '--rotations',
         str(rot)]) == 0
    assert sorted(f for f in os.listdir(out)
                  if not f.startswith('.')) == ['000001.png', '000002.png']
    # read back as the loader reads HHA images
    loaded = LoadRGBDImageFromFile(depth_encoding='hha')(
        dict(
            img_path=str(out / '000002.png'),
            depth_path=str(out / '000002.png')))
    mm = cv2.imread(str(src / '000002.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(
        loaded['img'][..., 3:],
        depth_to_hha(mm / 1000., K, gravity=gravity_from_rotation(rotation)))
    # a 3x3 intrinsics file per image, and estimated gravity
    kdir = tmp_path / 'K'
    kdir.mkdir()
    for name in ('000001', '000002'):
        np.savetxt(str(kdir / f'{name}.txt'), _camera_matrix(K))
    assert main(
        [str(src),
         str(tmp_path / 'hha2'), '--intrinsics-dir',
         str(kdir)]) == 0
    est = cv2.imread(str(tmp_path / 'hha2' / '000002.png'))[..., ::-1]
    np.testing.assert_array_equal(est, depth_to_hha(mm / 1000., K))
    # refusals
    assert main([str(src), str(src)]) == 1
    assert 'is the input' in capsys.readouterr().err
    rot.write_text('1 0 0\n0 1 0\n')
    assert main([str(src),
                 str(tmp_path / 'hha3'), '--rotations',
                 str(rot)]) == 1
    assert '3 per rotation' in capsys.readouterr().err

"""HHA encoding of metric depth (Gupta et al., ECCV 2014), vectorised.

HHA turns a depth map into three 8-bit channels:

1. **disparity**: ``31000 / max(z, 100)`` with z in centimetres;
2. **height above ground**: height in centimetres along the gravity
   direction, measured from the lowest point of the image (from 130 cm
   below the camera when that point is less than 90 cm below it);
3. **angle with gravity**: ``angle + 38`` with the angle in degrees between
   the surface normal (pointing away from the camera) and the gravity
   direction (pointing down): 38 on floors, 128 on walls, 218 on ceilings
   and where no normal can be estimated.

Gravity is estimated from the normals (Gupta et al.'s iterative
floor/wall alignment, thresholds 45 then 15 degrees, 5 iterations each),
unless given. The steps and constants are those of the authors' MATLAB code
(``saveHHA.m``, ``processDepthImage.m`` and the rgbdutils of
s-gupta/rcnn-depth); ``geminifusion_mmseg.testing.literal_hha`` is a
line-by-line transcription of it that the tests compare with this one.

:func:`depth_to_hha` is the implementation; :class:`DepthToHHA` (a pipeline
transform) and ``tools/dataset_converters/depth2hha.py`` (files) use it.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..nyudv2_meta import NYU_FRAME_SHAPE, NYU_RGB_INTRINSICS, RELEASED_BORDER

Intrinsics = Union[str, Sequence[float], np.ndarray]

# Gupta et al.'s parameters
NORMAL_RADII = (3, 10)  # window radius of the normals: encoded, for gravity
GRAVITY_THRESHOLDS = (45., 15.)  # degrees
GRAVITY_ITERATIONS = (5, 5)
MIN_DEPTH_CM = 100.
DISPARITY_SCALE = 31000.


def _nyu_cropped() -> Tuple[float, ...]:
    fx, fy, cx, cy = NYU_RGB_INTRINSICS
    top, _, left, _ = RELEASED_BORDER
    return fx, fy, cx - left, cy - top


def _cropped_shape() -> Tuple[int, int]:
    top, bottom, left, right = RELEASED_BORDER
    return (NYU_FRAME_SHAPE[0] - top - bottom,
            NYU_FRAME_SHAPE[1] - left - right)


# name -> ((fx, fy, cx, cy), (H, W) the intrinsics belong to)
INTRINSICS_PRESETS = {
    'nyu': (NYU_RGB_INTRINSICS, NYU_FRAME_SHAPE),
    'nyu-border-cropped': (_nyu_cropped(), _cropped_shape()),
}


def parse_intrinsics(
    intrinsics: Intrinsics
) -> Tuple[Tuple[float, ...], Optional[Tuple[int, int]]]:
    """Intrinsics as ``((fx, fy, cx, cy), image_shape or None)``.

    Args:
        intrinsics: A preset name (``'nyu'``: the NYU Kinect RGB camera,
            480x640; ``'nyu-border-cropped'``: the same for the 468x625
            frames of the border-cropped copy), ``(fx, fy, cx, cy)``, or a
            3x3 camera matrix.
    """
    if isinstance(intrinsics, str):
        if intrinsics not in INTRINSICS_PRESETS:
            raise ValueError(f'Unknown intrinsics {intrinsics!r}; use one of '
                             f'{sorted(INTRINSICS_PRESETS)}, (fx, fy, cx, '
                             'cy) or a 3x3 camera matrix.')
        values, shape = INTRINSICS_PRESETS[intrinsics]
        return tuple(values), shape
    arr = np.asarray(intrinsics, dtype=np.float64)
    if arr.shape == (3, 3):
        values = (arr[0, 0], arr[1, 1], arr[0, 2], arr[1, 2])
    elif arr.shape == (4, ):
        values = tuple(arr)
    else:
        raise ValueError(f'Intrinsics of shape {arr.shape}; expected '
                         '(fx, fy, cx, cy) or a 3x3 camera matrix.')
    if not (values[0] > 0 and values[1] > 0):
        raise ValueError(f'Focal lengths must be > 0, got {values[:2]}.')
    return tuple(float(v) for v in values), None


def point_cloud(z: np.ndarray, intrinsics: Sequence[float]) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) points, in the unit of ``z``.

    Camera coordinates: x right, y down, z forward; pixel (row i, col j)
    has the 1-based coordinates (j + 1, i + 1), as in Gupta et al.'s code.
    """
    fx, fy, cx, cy = intrinsics
    h, w = z.shape
    x = (np.arange(1, w + 1) - cx)[None, :] * z / fx
    y = (np.arange(1, h + 1) - cy)[:, None] * z / fy
    return np.stack([x, y, z], axis=-1)


def _box_sum(f: np.ndarray, radius: int) -> np.ndarray:
    """Sum of each (2r+1)^2 window of (H, W) ``f``, zeros outside.

    Sums of shifted copies (rows, then columns), not running sums: a window
    of zeros sums to exactly 0 and a single point to its own value, so
    degenerate windows give no normal, as in the authors' ``filter2``.
    """
    h, w = f.shape
    k = 2 * radius + 1
    padded = np.pad(f, radius)
    rows = padded[0:h].copy()
    for i in range(1, k):
        rows += padded[i:i + h]
    out = rows[:, 0:w].copy()
    for j in range(1, k):
        out += rows[:, j:j + w]
    return out


def surface_normals(points: np.ndarray, missing: np.ndarray,
                    radius: int) -> np.ndarray:
    """Least-squares plane normals of (2r+1)^2 windows (Gupta et al.).

    Args:
        points (np.ndarray): (H, W, 3) point cloud, centimetres.
        missing (np.ndarray): (H, W) bool, pixels without depth (left out
            of every window).
        radius (int): Window radius r.

    Returns:
        np.ndarray: (H, W, 3) unit normals oriented away from the camera
        (``n . p >= 0``); NaN where a window has too few points.
    """
    x, y, z = (np.where(missing, np.nan, points[..., k]) for k in range(3))
    with np.errstate(divide='ignore', invalid='ignore'):
        xz, yz, one_z = x / z, y / z, 1. / z
        ones = np.where(np.isnan(z), np.nan, 1.)
        terms = (xz * xz, xz * yz, xz, yz * yz, yz, ones, xz / z, yz / z,
                 one_z)
    sums = [_box_sum(np.where(np.isnan(t), 0., t), radius) for t in terms]
    a, b = sums[:6], sums[6:]  # the symmetric 3x3 A^T A, and A^T b
    # adjugate of A^T A (the normal's direction; its scale is dropped)
    adj = (a[3] * a[5] - a[4] * a[4], a[2] * a[4] - a[1] * a[5],
           a[1] * a[4] - a[2] * a[3], a[0] * a[5] - a[2] * a[2],
           a[1] * a[2] - a[0] * a[4], a[0] * a[3] - a[1] * a[1])
    rows = ((0, 1, 2), (1, 3, 4), (2, 4, 5))
    n = np.stack(
        [adj[r[0]] * b[0] + adj[r[1]] * b[1] + adj[r[2]] * b[2] for r in rows],
        axis=-1)
    with np.errstate(divide='ignore', invalid='ignore'):
        n /= np.sqrt(np.sum(n * n, axis=-1, keepdims=True))
    n *= np.where(n[..., 2:] < 0, -1., 1.)  # sign(n_z), 0 -> +1
    away = np.sum(n * points, axis=-1, keepdims=True)
    n *= np.where(away < 0, -1., 1.)  # NaN and 0 -> +1
    return n


def estimate_gravity(
    normals: np.ndarray,
    thresholds: Sequence[float] = GRAVITY_THRESHOLDS,
    iterations: Sequence[int] = GRAVITY_ITERATIONS,
    initial: Sequence[float] = (0., 1., 0.)
) -> np.ndarray:
    """Gravity direction from normals (Gupta et al.'s ``getYDir``).

    Repeatedly takes the normals within ``t`` degrees of the current
    direction (floors, ceilings) and those within ``t`` of perpendicular
    (walls), and moves the direction to the one most aligned with the
    first set and most perpendicular to the second (the smallest
    eigenvector of ``W W^T - F F^T``).

    Returns:
        np.ndarray: (3, ) unit vector in camera coordinates (y down), the
        sign kept close to ``initial``.
    """
    nn = normals.reshape(-1, 3)
    nn = nn[~np.isnan(nn[:, 0])]
    direction = np.asarray(initial, dtype=np.float64)
    for thresh, iters in zip(thresholds, iterations):
        cos_t, sin_t = np.cos(np.deg2rad(thresh)), np.sin(np.deg2rad(thresh))
        for _ in range(iters):
            sim = np.abs(nn @ direction)
            floor, wall = nn[sim > cos_t], nn[sim < sin_t]
            a = wall.T @ wall - floor.T @ floor
            _, vectors = np.linalg.eigh(a)
            new = vectors[:, 0]
            direction = new * np.sign(direction @ new)
    return direction


def rotation_to(target: Sequence[float], source=(0., 1., 0.)) -> np.ndarray:
    """The rotation (3, 3) taking ``source`` to ``target`` about their
    cross product; identity below 0.1 degrees (``getRMatrix``)."""
    yi = np.asarray(source, dtype=np.float64)
    yi = yi / np.linalg.norm(yi)
    yf = np.asarray(target, dtype=np.float64)
    yf = yf / np.linalg.norm(yf)
    phi = np.degrees(np.arccos(np.clip(yi @ yf, -1., 1.)))
    if abs(phi) <= 0.1:
        return np.eye(3)
    ax = np.cross(yi, yf)
    ax = ax / np.linalg.norm(ax)
    s = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    phi = np.deg2rad(phi)
    return np.eye(3) + np.sin(phi) * s + (1 - np.cos(phi)) * (s @ s)


def gravity_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Gravity direction of a camera-to-gravity-aligned rotation.

    ``rotation`` maps camera coordinates (y down) to a frame whose y axis
    is gravity, as the 3x3 matrices of ``camera_rotations_NYU.txt`` do;
    gravity in camera coordinates is then its second row.
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape != (3, 3):
        raise ValueError(f'A rotation is 3x3, got {rotation.shape}.')
    return rotation[1]


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``uint8``: round half away from zero, saturate, NaN -> 0."""
    x = np.nan_to_num(x, nan=0.)
    return np.clip(np.floor(np.abs(x) + 0.5) * np.sign(x), 0,
                   255).astype(np.uint8)


def depth_to_hha(depth: np.ndarray,
                 intrinsics: Intrinsics,
                 missing: Optional[np.ndarray] = None,
                 gravity: Optional[Sequence[float]] = None,
                 as_uint8: bool = True) -> np.ndarray:
    """HHA encoding of one metric depth map.

    Args:
        depth (np.ndarray): (H, W) depth in metres (0 = missing).
        intrinsics: See :func:`parse_intrinsics`; the principal point is
            in 1-based pixel coordinates as in MATLAB calibrations (add 1
            to an OpenCV ``cx``, ``cy``).
        missing (np.ndarray, optional): (H, W) bool, pixels without a
            measurement, left out of the normals (e.g. ``raw_depth == 0``
            when ``depth`` is in-painted). Defaults to ``depth == 0``.
        gravity (Sequence[float], optional): Gravity direction in camera
            coordinates (y down), e.g. :func:`gravity_from_rotation`;
            estimated from the normals when None.
        as_uint8 (bool): Round to uint8 as the authors' code does (the
            HHA images). False returns the float32 values.

    Returns:
        np.ndarray: (H, W, 3), channels (disparity, height, angle).
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f'depth must be (H, W), got {depth.shape}.')
    if not np.isfinite(depth).all():
        raise ValueError('depth has NaN or inf values.')
    values, _ = parse_intrinsics(intrinsics)
    if missing is None:
        missing = depth == 0
    elif np.shape(missing) != depth.shape:
        raise ValueError(f'missing has shape {np.shape(missing)}, depth '
                         f'{depth.shape}.')
    points = point_cloud(depth * 100., values)  # centimetres
    normals = surface_normals(points, missing, NORMAL_RADII[0])
    if gravity is None:
        gravity = estimate_gravity(
            surface_normals(points, missing, NORMAL_RADII[1]))
    gravity = np.asarray(gravity, dtype=np.float64)
    rotation = rotation_to(gravity)
    height = -(points @ rotation)[..., 1]
    low = height.min()
    if low > -90:
        low = -130.
    with np.errstate(invalid='ignore'):
        cos = np.fmin(1., np.fmax(-1., normals @ gravity))
    angle = np.degrees(np.arccos(cos))
    hha = np.stack([
        DISPARITY_SCALE / np.maximum(points[..., 2], MIN_DEPTH_CM),
        height - low, angle + 128. - 90.
    ],
                   axis=-1)
    return _to_uint8(hha) if as_uint8 else hha.astype(np.float32)


@TRANSFORMS.register_module()
class DepthToHHA(BaseTransform):
    """Replace the depth channels of ``img`` by their HHA encoding.

    Place it right after the loader (``LoadRGBDImageFromFile`` with
    ``depth_encoding='raw'``, or ``LoadMultiModalImageFromFile`` with the
    ``'raw'`` encoding for the modality), before any resize, crop or flip:
    HHA needs the depth on the pixel grid of ``intrinsics``. The result is
    what the HHA images of ``tools/dataset_converters/depth2hha.py`` hold
    (uint8 values, channels disparity, height, angle), so a model trained
    on those files gets the same input; the data preprocessor's depth
    mean/std then apply as for an HHA file. It costs about a second per
    480x640 image on one CPU core: for training, converting the files once
    is cheaper.

    Required Keys:

    - img (H, W, 3K float32: the depth channels hold the stored values)
    - modalities (optional: the channel order of a K-modality image)

    Modified Keys:

    - img (the depth channels)

    Args:
        intrinsics: ``'nyu'``, ``'nyu-border-cropped'``, ``(fx, fy, cx,
            cy)`` or a 3x3 camera matrix (see :func:`depth_to_hha`).
        depth_unit (float): Metres per stored depth unit. Defaults to 1e-3
            (16-bit millimetre PNGs).
        gravity_rotation (array, optional): A fixed 3x3 camera-to-gravity
            rotation (see :func:`gravity_from_rotation`); by default
            gravity is estimated per image.
        modality (str): The modality to encode. Defaults to 'depth'.
    """

    def __init__(self,
                 intrinsics: Intrinsics,
                 depth_unit: float = 1e-3,
                 gravity_rotation: Optional[Sequence] = None,
                 modality: str = 'depth') -> None:
        self.intrinsics, self.shape = parse_intrinsics(intrinsics)
        if not depth_unit > 0:
            raise ValueError('DepthToHHA: depth_unit (metres per stored '
                             f'unit) must be > 0, got {depth_unit}.')
        self.depth_unit = float(depth_unit)
        self.gravity = None if gravity_rotation is None else \
            gravity_from_rotation(gravity_rotation)
        self.modality = modality

    def _channels(self, results: dict) -> slice:
        names = results.get('modalities')
        if names is None:
            if self.modality != 'depth':
                raise KeyError(
                    f'DepthToHHA: modality {self.modality!r} needs a '
                    'K-modality sample (results["modalities"]).')
            return slice(3, 6)
        names = list(names)
        if self.modality not in names:
            raise KeyError(f'DepthToHHA: no modality {self.modality!r} in '
                           f'{names}.')
        k = names.index(self.modality)
        return slice(3 * k, 3 * k + 3)

    def transform(self, results: dict) -> dict:
        img = results['img']
        where = results.get('depth_path') or results.get('img_path')
        if results.get('flip') or ('ori_shape' in results and tuple(
                img.shape[:2]) != tuple(results['ori_shape'][:2])):
            raise ValueError(
                f'DepthToHHA ({where}): the image was resized, cropped or '
                'flipped before; put DepthToHHA right after the loader.')
        if self.shape is not None and tuple(img.shape[:2]) != self.shape:
            raise ValueError(
                f'DepthToHHA ({where}): the intrinsics are for '
                f'{self.shape[0]}x{self.shape[1]} images, the depth is '
                f'{img.shape[0]}x{img.shape[1]}.')
        channels = self._channels(results)
        block = img[..., channels]
        if not (np.array_equal(block[..., 0], block[..., 1])
                and np.array_equal(block[..., 0], block[..., 2])):
            raise ValueError(
                f'DepthToHHA ({where}): the {self.modality} channels differ; '
                "it needs a depth map loaded with the 'raw' encoding.")
        hha = depth_to_hha(
            block[..., 0] * self.depth_unit,
            self.intrinsics,
            gravity=self.gravity)
        img = img.copy()
        img[..., channels] = hha
        results['img'] = img
        encodings = results.get('modality_encodings')
        if encodings is not None and self.modality in encodings:
            # the channels now hold HHA (what corruptions read as missing)
            encodings = dict(encodings)
            encodings[self.modality] = dict(
                encoding='hha', scale=1.0, range=None)
            results['modality_encodings'] = encodings
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(intrinsics={self.intrinsics}, '
                f'depth_unit={self.depth_unit}, modality={self.modality!r})')

"""Gupta et al.'s HHA code, literally (a test oracle).

A line-by-line transcription into Python of the MATLAB code that made the
published HHA images (s-gupta/rcnn-depth, ``rcnn/saveHHA.m`` and
``mcg/depth_features/processDepthImage.m``, with the rgbdutils functions
``getPointCloudFromZ``, ``computeNormalsSquareSupport`` (and its
``filterItChopOff``, ``invertIt``, ``mutiplyIt``), ``getYDir``,
``getRMatrix`` and ``rotatePC``, as collected in charlesCXK/Depth2HHA),
MATLAB semantics kept where they matter:

* pixel coordinates from ``meshgrid(1:W, 1:H)`` (1-based);
* ``filter2(B, f)``: zero-padded 'same' correlation
  (``scipy.signal.correlate2d``); ``ordfilt2(sp, k, B, 'symmetric')``
  with symmetric padding; the superpixel correction loop of
  ``filterItChopOff`` kept as the loop it is;
* ``eig`` of a symmetric matrix: ascending eigenvalues, first minimum;
* ``max(-1, NaN)`` is -1 (MATLAB's min/max ignore NaN), so pixels without
  a normal get the angle 180;
* ``prctile(h(:), 0)``: the minimum, NaN ignored;
* ``uint8``: round half away from zero, saturate, NaN -> 0.

Written for clarity, not speed, and used only by the tests against
:func:`geminifusion_mmseg.datasets.transforms.hha.depth_to_hha`.
"""
import numpy as np
from scipy import ndimage, signal


def get_point_cloud_from_z(Z, C, s=1):
    """getPointCloudFromZ.m: ``Z`` (H, W), camera matrix ``C`` (3, 3)."""
    H, W = Z.shape
    xx, yy = np.meshgrid(np.arange(1, W + 1), np.arange(1, H + 1))
    cc_rgb = C[0:2, 2] * s
    fc_rgb = np.diag(C[0:2, 0:2]) * s
    x3 = (xx - cc_rgb[0]) * Z / fc_rgb[0]
    y3 = (yy - cc_rgb[1]) * Z / fc_rgb[1]
    z3 = Z
    return x3, y3, z3


def filter_it_chop_off(f, r, sp):
    """filterItChopOff of computeNormalsSquareSupport.m."""
    f = f.copy()
    f[np.isnan(f)] = 0
    H, W, d = f.shape
    B = np.ones((2 * r + 1, 2 * r + 1))
    minSP = ndimage.minimum_filter(sp, footprint=B, mode='reflect')
    maxSP = ndimage.maximum_filter(sp, footprint=B, mode='reflect')
    # find(...) in column-major order
    ind = np.flatnonzero(((minSP != sp) | (maxSP != sp)).ravel(order='F'))
    spInd = np.arange(sp.size).reshape(sp.shape, order='F')
    delta = np.zeros((H * W, d))
    fr = f.reshape((H * W, d), order='F')
    spr = sp.ravel(order='F')
    I, J = np.unravel_index(ind, (H, W), order='F')
    for i in range(len(ind)):
        x, y = I[i], J[i]
        clipInd = spInd[max(0, x - r):min(H, x + r + 1),
                        max(0, y - r):min(W, y + r + 1)]
        diffInd = clipInd[spr[clipInd] != sp[x, y]]
        delta[ind[i], :] = np.sum(fr[diffInd, :], axis=0)
    delta = delta.reshape((H, W, d), order='F')
    fFilt = np.zeros((H, W, d))
    for i in range(d):
        fFilt[:, :, i] = signal.correlate2d(
            f[:, :, i], B, mode='same', boundary='fill', fillvalue=0)
    return fFilt - delta


def invert_it(AtA):
    """invertIt of computeNormalsSquareSupport.m."""

    def a(k):
        return AtA[:, :, k - 1]

    A = a(4) * a(6) - a(5) * a(5)
    D = -(a(2) * a(6) - a(3) * a(5))
    G = a(2) * a(5) - a(3) * a(4)
    E = a(1) * a(6) - a(3) * a(3)
    H = -(a(1) * a(5) - a(2) * a(3))
    K = a(1) * a(4) - a(2) * a(2)
    detAtA = a(1) * A + a(2) * D + a(3) * G
    AtA_1 = np.stack([A, D, G, E, H, K], axis=2)
    return AtA_1, detAtA


def mutiply_it(AtA_1, Atb):
    """mutiplyIt of computeNormalsSquareSupport.m."""

    def a(k):
        return AtA_1[:, :, k - 1]

    def b(k):
        return Atb[:, :, k - 1]

    x1 = a(1) * b(1) + a(2) * b(2) + a(3) * b(3)
    x2 = a(2) * b(1) + a(4) * b(2) + a(5) * b(3)
    x3 = a(3) * b(1) + a(5) * b(2) + a(6) * b(3)
    return np.stack([x1, x2, x3], axis=2)


def compute_normals_square_support(depthImage, missingMask, R, sc,
                                   cameraMatrix, superpixels):
    """computeNormalsSquareSupport.m: depth in metres."""
    depthImage = depthImage * 100
    X, Y, Z = get_point_cloud_from_z(depthImage, cameraMatrix, sc)
    Xf, Yf, Zf = X, Y, Z
    X = X.copy()
    Y = Y.copy()
    Z = Z.copy()
    X[missingMask] = np.nan
    Y[missingMask] = np.nan
    Z[missingMask] = np.nan
    with np.errstate(divide='ignore', invalid='ignore'):
        one_Z = 1. / Z
        X_Z = X / Z
        Y_Z = Y / Z
        one = Z.copy()
        one[~np.isnan(one)] = 1
        X_ZZ = X / (Z * Z)
        Y_ZZ = Y / (Z * Z)
        AtARaw = np.stack([X_Z**2, X_Z * Y_Z, X_Z, Y_Z**2, Y_Z, one], axis=2)
        AtbRaw = np.stack([X_ZZ, Y_ZZ, one_Z], axis=2)
    AtA = filter_it_chop_off(
        np.concatenate([AtARaw, AtbRaw], axis=2), R, superpixels)
    Atb = AtA[:, :, AtARaw.shape[2]:]
    AtA = AtA[:, :, :AtARaw.shape[2]]
    AtA_1, detAtA = invert_it(AtA)
    N = mutiply_it(AtA_1, Atb)
    with np.errstate(divide='ignore', invalid='ignore'):
        b = -detAtA / np.sqrt(np.sum(N**2, axis=2))
        N = N / np.sqrt(np.sum(N**2, axis=2))[:, :, None]
    SN = np.sign(N[:, :, 2])
    SN[SN == 0] = 1
    N = N * np.repeat(SN[:, :, None], 3, axis=2)
    b = b * SN
    sn = np.sign(np.sum(N * np.stack([Xf, Yf, Zf], axis=2), axis=2))
    sn[np.isnan(sn)] = 1
    sn[sn == 0] = 1
    N = np.repeat(sn[:, :, None], 3, axis=2) * N
    b = b * sn
    return N, b


def _cosd(t):
    return np.cos(np.pi * t / 180)


def _sind(t):
    return np.sin(np.pi * t / 180)


def get_y_dir_helper(N, y0, thresh, iter):
    """getYDirHelper of getYDir.m."""
    nn = np.transpose(N, (2, 0, 1))
    nn = nn.reshape((3, nn.size // 3), order='F')
    nn = nn[:, ~np.isnan(nn[0, :])]
    yDir = y0
    for i in range(iter):
        sim0 = yDir.T @ nn
        indF = np.abs(sim0) > _cosd(thresh)
        indW = np.abs(sim0) < _sind(thresh)
        NF = nn[:, indF]
        NW = nn[:, indW]
        A = NW @ NW.T - NF @ NF.T
        D, V = np.linalg.eigh(A)
        ind = int(np.argmin(D))
        newYDir = V[:, ind]
        yDir = newYDir * np.sign(yDir.T @ newYDir)
    return yDir


def get_y_dir(N, yDirParam):
    """getYDir.m."""
    y = yDirParam['y0']
    for i in range(len(yDirParam['angleThresh'])):
        y = get_y_dir_helper(N, y, yDirParam['angleThresh'][i],
                             yDirParam['iter'][i])
    return y


def get_r_matrix(yi, yf):
    """getRMatrix.m (the axis case)."""
    yi = yi / np.linalg.norm(yi)
    yf = yf / np.linalg.norm(yf)
    ax = np.cross(yi, yf)
    ax = ax / np.linalg.norm(ax)
    phi = np.degrees(np.arccos(yi @ yf))
    if abs(phi) > 0.1:
        phi = phi * (np.pi / 180)
        S_hat = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]],
                          [-ax[1], ax[0], 0]])
        R = np.eye(3) + np.sin(phi) * S_hat + (1 - np.cos(phi)) * (
            S_hat @ S_hat)
    else:
        R = np.eye(3)
    return R


def rotate_pc(pc, R):
    """rotatePC.m: ``pc`` (H, W, 3)."""
    if np.array_equal(R, np.eye(3)):
        return pc
    p = np.transpose(pc, (2, 0, 1))
    tmp = p.reshape((3, p.size // 3), order='F')
    tmp = R @ tmp
    tmp = tmp.reshape(p.shape, order='F')
    return np.transpose(tmp, (1, 2, 0))


def process_depth_image(z, missingMask, C, yDir=None):
    """processDepthImage.m: ``z`` in centimetres.

    ``yDir`` (not in the original) replaces the estimated gravity.
    """
    yDirParam = dict(
        angleThresh=[45, 15], iter=[5, 5], y0=np.array([0., 1., 0.]))
    patchSize = [3, 10]
    X, Y, Z = get_point_cloud_from_z(z, C, 1)
    pc = np.stack([X, Y, Z], axis=2)
    N1, b1 = compute_normals_square_support(z / 100, missingMask, patchSize[0],
                                            1, C, np.ones(z.shape))
    N = N1
    if yDir is None:
        N2, b2 = compute_normals_square_support(z / 100, missingMask,
                                                patchSize[1], 1, C,
                                                np.ones(z.shape))
        yDir = get_y_dir(N2, yDirParam)
    y0 = np.array([0., 1., 0.])
    R = get_r_matrix(y0, yDir)
    NRot = rotate_pc(N, R.T)
    pcRot = rotate_pc(pc, R.T)
    h = -pcRot[:, :, 1]
    yMin = np.nanmin(h)  # prctile(h(:), 0)
    if yMin > -90:
        yMin = -130
    h = h - yMin
    return pc, N, yDir, h, pcRot, NRot


def _matlab_uint8(x):
    x = np.where(np.isnan(x), 0, x)
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0,
                   255).astype(np.uint8)


def save_hha(C, D, RD, yDir=None, as_uint8=True):
    """saveHHA.m without the file: ``D``, ``RD`` in millimetres.

    Returns (H, W, 3): disparity, height, angle (``I`` of saveHHA.m).
    """
    D = D.astype(np.float64) / 1000
    missingMask = RD == 0
    pc, N, yDir, h, pcRot, NRot = process_depth_image(D * 100, missingMask, C,
                                                      yDir)
    s = np.sum(N * yDir.reshape(1, 1, 3), axis=2)
    s = np.where(np.isnan(s), -1, s)  # max(-1, NaN) == -1 in MATLAB
    angl = np.degrees(np.arccos(np.minimum(1, np.maximum(-1, s))))
    pc = pc.copy()
    pc[:, :, 2] = np.maximum(pc[:, :, 2], 100)
    I = np.zeros(pc.shape)  # noqa: E741
    I[:, :, 0] = 31000 / pc[:, :, 2]
    I[:, :, 1] = h
    I[:, :, 2] = angl + 128 - 90
    return _matlab_uint8(I) if as_uint8 else I

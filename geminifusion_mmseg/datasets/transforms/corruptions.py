"""Sensor failures as seeded test-time transforms (and a training
augmentation built from them).

Each corruption acts on the image of the loader right after it is loaded:
the 6-channel RGB-D image of :class:`LoadRGBDImageFromFile` (channels 0-2
RGB 0..255, 3-5 the depth encoding), or the 3K-channel image of
:class:`LoadMultiModalImageFromFile`. It touches ONE modality, named by
``modality`` ('depth' for the depth corruptions, 'rgb' for the RGB ones by
default; the others are bit-identical afterwards) and never the label: the
ground truth stays registered to the RGB image. The channels of the
modality come from ``results['modalities']`` (see
:func:`~geminifusion_mmseg.datasets.transforms.missing.modality_channels`).

Any modality of a K-modality sample but RGB can be blanked
(:class:`ModalityMissing`, ``'<modality>_missing'`` in
:func:`build_corruption`: ``thermal_missing``, ``event_missing``); the
depth corruptions act on any depth-like modality (read with a depth
encoding, ``results['modality_encodings']``), e.g. ``lidar_holes`` for a
LiDAR range image loaded with ``encodings=dict(lidar='raw')``.

=========================  ====================================================
name (``CORRUPTIONS``)     what, per severity 1..5
=========================  ====================================================
``depth_missing``          :class:`DepthMissing`: every pixel "no measurement"
                           (one level: severity is ignored)
``depth_holes``            :class:`DepthHoles`: blobs of missing depth,
                           preferring dark / very bright (specular-like) /
                           far pixels; hole fraction 5, 10, 20, 35, 50 %
``depth_noise``            :class:`DepthNoise`: Gaussian noise with
                           sigma = a z^2 (structured light),
                           a = 0.0025, 0.005, 0.01, 0.02, 0.04 1/m
                           (sigma at 2 m: 1, 2, 4, 8, 16 cm)
``depth_quantisation``     :class:`DepthQuantisation`: disparity 1/z rounded
                           to steps of 0.005, 0.01, 0.02, 0.04, 0.08 1/m
                           (depth step at 2 m: 2, 4, 8, 16, 32 cm)
``depth_misregistration``  :class:`DepthMisregistration`: depth shifted by
                           2, 4, 6, 8, 12 px (random direction) and rotated
                           by 0.5, 1, 1.5, 2, 3 degrees (random sign)
``rgb_low_light``          :class:`RGBLowLight`: gamma 1.5, 2, 2.5, 3, 3.5
                           (darker), then read + shot noise
``rgb_motion_blur``        :class:`RGBMotionBlur`: linear motion blur of
                           3, 5, 9, 13, 17 px at a random angle
``rgb_missing``            :class:`RGBMissing`: a black image (one level)
=========================  ====================================================

**Missing values** follow the depth encoding (see
:mod:`~geminifusion_mmseg.datasets.transforms.missing`): 0 for 'raw'
(what NYUDv2 / SUN RGB-D sensors store), what a stored 0 encodes to for
'scale' / 'clip', 0 for 'hha'; black (0) for RGB.

**Physical units.** Noise, quantisation and the "far" holes are defined in
metres. The depth transforms take the loader's encoding (``depth_encoding``,
``depth_scale``, ``depth_range``: copy them from ``LoadRGBDImageFromFile``)
and ``depth_unit``, the metres per STORED unit (before the encoding):
1e-3 (default) for NYUDv2's 16-bit millimetres, 1.0 for depth stored in
metres. SUN RGB-D's 8-bit maps (DFormer layout) are normalised per image and
have no unit; 10 / 255 (0..255 as 0..10 m) is a usable approximation. HHA
has no metric depth: noise and quantisation refuse it; holes, misregistration
and missing work on all three channels.

**Modalities of another size.** With ``size_mismatch='stretch'`` (a depth
map stored at another size than RGB, e.g. the TokenFusion NYUDv2 copy) a
depth corruption acts on the depth as stretched onto the RGB image at load,
and the pipeline's later resize starts from that corrupted copy (see
:mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`).

**Seeding.** With ``seed`` (an int, the default 0) each sample gets its own
random generator derived from the seed, the transform and the sample's
``img_path`` (else ``sample_idx``), so a corrupted test set is identical in
every run, with any number of workers and processes, and the severities of
one corruption share their random draws (the holes of severity 2 contain
those of severity 1). ``seed=None`` draws from NumPy's global generator
(training).
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Type

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .missing import (DEPTH_CHANNELS, RGB_CHANNELS, RGB_MISSING_VALUE,
                      channel_range, check_depth_encoding, modality_channels,
                      modality_missing_value, sample_encoding)
from .modality_encoding import (DEFAULT_ENCODINGS, DEPTH_ENCODINGS,
                                MODALITY_ENCODINGS, ModalityEncoding)
from .seeding import sample_rng
from .size_mismatch import settle_unaligned

SEVERITIES = (1, 2, 3, 4, 5)

# ITU-R 601-2 luma weights.
_LUMA = np.array([0.2989, 0.587, 0.114], np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB 0..255 -> (H, W) luma, float32."""
    return rgb.astype(np.float32) @ _LUMA


class _Corruption(BaseTransform):
    """Common part: severity, seed, modality, image checks.

    Subclasses set ``NAME`` (the short name in :data:`CORRUPTIONS`),
    ``MODALITY`` ('rgb', 'depth' or 'any': which modalities it can act
    on), ``LEVELS`` (five parameter dicts, or None for a corruption with
    one level) and implement ``_apply``.

    ``_apply`` sees a 6-channel image: RGB (0-2) and the corrupted
    modality (3-5). On an RGB-D sample (or a K-modality one whose
    modality is channels 3-5) that is the sample itself; for a modality
    elsewhere in a K-modality sample (``results['modalities']``, e.g.
    channels 6-8 for thermal in ``('rgb', 'depth', 'thermal')``) it is a
    copy whose channels 3-5 are written back: only that modality changes.
    """
    NAME = ''
    MODALITY = ''
    LEVELS: Optional[Tuple[dict, ...]] = None

    def __init__(self,
                 severity: Optional[int] = 3,
                 seed: Optional[int] = 0,
                 modality: Optional[str] = None) -> None:
        owner = type(self).__name__
        if self.LEVELS is None:
            if severity is not None and severity not in SEVERITIES:
                raise ValueError(f'{owner}: severity must be one of '
                                 f'{SEVERITIES} or None, got {severity!r}.')
            self.params: dict = {}
        else:
            if severity not in SEVERITIES:
                raise ValueError(f'{owner}: severity must be one of '
                                 f'{SEVERITIES}, got {severity!r}.')
            self.params = dict(self.LEVELS[severity - 1])
        if seed is not None and not isinstance(seed, (int, np.integer)):
            raise TypeError(f'{owner}: seed must be an int or None, got '
                            f'{seed!r}.')
        if modality is None:
            modality = self.MODALITY
        if not isinstance(modality, str) or not modality or \
                modality == 'any':
            raise ValueError(f'{owner}: modality must be a modality name '
                             f"such as 'depth' or 'thermal', got "
                             f'{modality!r}.')
        if self.MODALITY == 'rgb' and modality != 'rgb':
            raise ValueError(f"{owner} corrupts the RGB camera (modality "
                             f"'rgb') only, got modality={modality!r}.")
        if self.MODALITY != 'rgb' and modality == 'rgb':
            raise ValueError(f"{owner} cannot act on 'rgb'; use "
                             'RGBMissing or the rgb_* corruptions.')
        self.severity = severity
        self.seed = None if seed is None else int(seed)
        self.modality = modality

    def _override(self, **explicit) -> None:
        """Replace level parameters by explicitly given (non-None) ones."""
        for key, value in explicit.items():
            if value is not None:
                self.params[key] = value

    @property
    def _salt(self) -> str:
        """Salt of the per-sample generator: the class name (and the
        modality, if not the class's own, so that two modalities do not
        get the same random draws)."""
        name = type(self).__name__
        return name if self.modality == self.MODALITY else \
            f'{name}:{self.modality}'

    def _check_sample(self, results: dict) -> None:
        """Hook: raise if the sample's encoding of the modality does not
        suit this corruption (see :class:`_DepthCorruption`)."""

    def transform(self, results: dict) -> dict:
        """Corrupt one modality of ``results['img']``.

        Args:
            results (dict): Result dict with ``img`` (H, W, 3K), float32,
                channels 0-2 RGB 0..255, then 3 channels per modality of
                ``results['modalities']`` (without it: (H, W, 6), 3-5
                the depth encoding).

        Returns:
            dict: The dict with ``img`` corrupted in the channels of
            ``modality`` only; the label and everything else unchanged.

        Raises:
            KeyError: ``modality`` is not among the sample's modalities
                (the message lists them).
        """
        owner = type(self).__name__
        channels = modality_channels(results, self.modality, owner)
        self._check_sample(results)
        img = results['img']
        if self.modality != 'rgb':
            # a modality stored at another size is corrupted as stretched
            # onto the RGB image (size_mismatch='stretch')
            settle_unaligned(results, channel_range(channels))
        if img.dtype != np.float32:
            img = img.astype(np.float32)
        rng = sample_rng(results, self.seed, self._salt)
        if channels.start in (RGB_CHANNELS.start, DEPTH_CHANNELS.start):
            self._apply(img, rng)
        else:
            view = np.concatenate([img[..., RGB_CHANNELS], img[..., channels]],
                                  axis=2)
            self._apply(view, rng)
            img[..., channels] = view[..., DEPTH_CHANNELS]
        results['img'] = img
        return results

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        """Corrupt ``img`` (H, W, 6) float32 in place: channels 0-2 for an
        RGB corruption, else 3-5 (the corrupted modality)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ', '.join(f'{k}={v}' for k, v in self.params.items())
        modality = '' if self.modality == self.MODALITY else \
            f', modality={self.modality!r}'
        return (f'{self.__class__.__name__}(severity={self.severity}, '
                f'seed={self.seed}{modality}{", " if params else ""}{params})')


class _DepthCorruption(_Corruption):
    """A corruption of a depth-like modality; knows its depth encoding.

    A modality is depth-like when its loader reads it with a depth
    encoding ('raw', 'scale', 'clip' or 'hha'; ``results
    ['modality_encodings']``): depth, or e.g. a LiDAR range image loaded
    with ``encodings=dict(lidar='raw')``. A modality read with another
    encoding ('image', 'thermal': DeLiVER's depth / event / LiDAR images
    and thermal as stored) is refused with a message; it can still be
    blanked (``<modality>_missing``).

    Args:
        severity (int): 1..5.
        seed (int, optional): See the module doc. Defaults to 0.
        modality (str): The modality corrupted. Defaults to 'depth'.
        depth_encoding (str): The loader's encoding: 'raw', 'scale',
            'clip' or 'hha'. Defaults to 'raw'.
        depth_scale (float): The loader's ``depth_scale`` ('scale').
            Defaults to 1.0.
        depth_range (tuple[float, float], optional): The loader's
            ``depth_range`` ('clip', in stored units).
        depth_unit (float): Metres per stored unit (before the encoding).
            Defaults to 1e-3 (millimetres, NYUDv2).
    """
    MODALITY = 'depth'
    NEEDS_METRIC = False

    def __init__(self,
                 severity: Optional[int] = 3,
                 seed: Optional[int] = 0,
                 depth_encoding: str = 'raw',
                 depth_scale: float = 1.0,
                 depth_range: Optional[Sequence[float]] = None,
                 depth_unit: float = 1e-3,
                 modality: str = 'depth') -> None:
        super().__init__(severity, seed, modality)
        owner = type(self).__name__
        check_depth_encoding(depth_encoding, depth_range, owner)
        if self.NEEDS_METRIC and depth_encoding == 'hha':
            raise ValueError(
                f"{owner} needs metric depth; depth_encoding='hha' has "
                "none. Use it with 'raw', 'scale' or 'clip' depth.")
        if depth_encoding == 'scale' and not depth_scale > 0:
            raise ValueError(f'{owner}: depth_scale must be > 0, got '
                             f'{depth_scale}.')
        if not depth_unit > 0:
            raise ValueError(f'{owner}: depth_unit (metres per stored '
                             f'depth unit) must be > 0, got {depth_unit}.')
        self.depth_encoding = depth_encoding
        self.depth_scale = float(depth_scale)
        self.depth_range = None if depth_range is None else tuple(
            float(v) for v in depth_range)
        self.depth_unit = float(depth_unit)
        #: The loader's encoding of the depth channels.
        self.modality_encoding = ModalityEncoding(depth_encoding,
                                                  self.depth_scale,
                                                  self.depth_range)
        self.missing = self.modality_encoding.missing_value()

    def _check_sample(self, results: dict) -> None:
        """Refuse a modality the loader did not read as depth."""
        enc = sample_encoding(results, self.modality)
        if enc is not None and enc['encoding'] not in DEPTH_ENCODINGS:
            raise ValueError(
                f'{type(self).__name__}(modality={self.modality!r}): the '
                f'loader reads {self.modality!r} with the encoding '
                f"{enc['encoding']!r}, not with a depth encoding "
                f'{DEPTH_ENCODINGS}, so it is not a depth-like modality. '
                'Load it with encodings=dict('
                f"{self.modality}='raw') (or 'scale' / 'clip') if its files "
                'store distances; to blank it, use ModalityMissing('
                f"modality={self.modality!r}) ('{self.modality}_missing' in "
                'the robustness tool).')

    # encoded value <-> metres (not for 'hha')
    def to_metres(self, enc: np.ndarray) -> np.ndarray:
        """Encoded depth (any shape) -> metres
        (:meth:`.ModalityEncoding.to_metres`)."""
        return self.modality_encoding.to_metres(enc, self.depth_unit)

    def from_metres(self, metres: np.ndarray) -> np.ndarray:
        """Metres -> encoded depth (clipped to the range for 'clip';
        :meth:`.ModalityEncoding.from_metres`)."""
        return self.modality_encoding.from_metres(metres, self.depth_unit)

    def valid_mask(self, img: np.ndarray) -> np.ndarray:
        """(H, W) bool: pixels with a depth measurement (``img``: the
        6-channel image ``_apply`` sees, the modality in channels 3-5)."""
        return (img[..., DEPTH_CHANNELS] != self.missing).any(axis=2)

    def _set_depth(self, img: np.ndarray, depth: np.ndarray) -> None:
        """Write a (H, W) depth map to channels 3-5."""
        img[..., DEPTH_CHANNELS] = depth[..., None]

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] +
                f", depth_encoding='{self.depth_encoding}', "
                f'depth_unit={self.depth_unit}, missing={self.missing})')


@TRANSFORMS.register_module()
class DepthMissing(_DepthCorruption):
    """No depth at all (sensor off, cable out, sunlight): every pixel of
    channels 3-5 becomes the encoding's missing value (0 for 'raw').

    One level; ``severity`` is accepted for a uniform interface and ignored.
    Arguments as :class:`_DepthCorruption`.
    """
    NAME = 'depth_missing'
    LEVELS = None

    def __init__(self, severity: Optional[int] = None, **kwargs) -> None:
        super().__init__(severity, **kwargs)

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        img[..., DEPTH_CHANNELS] = self.missing


@TRANSFORMS.register_module()
class ModalityMissing(_Corruption):
    """No signal from one sensor: every pixel of ``modality``'s 3 channels
    becomes its encoding's missing value (a stored 0 through the encoding:
    0 for thermal, event and LiDAR images as stored, see
    :func:`~geminifusion_mmseg.datasets.transforms.missing.modality_missing_value`).
    The corruption ``<modality>_missing`` (e.g. ``thermal_missing``,
    ``event_missing``) of :func:`build_corruption`, for any modality of
    the sample but RGB (``rgb_missing`` is :class:`RGBMissing`).

    One level; ``severity`` is accepted for a uniform interface and ignored.

    Args:
        modality (str): The modality, e.g. 'thermal'.
        encoding (str, optional): Its encoding (one of
            ``MODALITY_ENCODINGS``); None (recommended) takes the loader's
            (``results['modality_encodings']``), else the default of the
            name ('raw' for depth, 'thermal', 'hha', else 'image').
            Defaults to None.
        scale (float): Factor of the 'scale' encoding. Defaults to 1.0.
        value_range (tuple[float, float], optional): ``(min, max)`` of
            'clip'.
        severity (int, optional): Ignored. Defaults to None.
        seed (int, optional): Unused (deterministic). Defaults to 0.
    """
    NAME = '<modality>_missing'
    MODALITY = 'any'
    LEVELS = None

    def __init__(self,
                 modality: str,
                 encoding: Optional[str] = None,
                 scale: float = 1.0,
                 value_range: Optional[Sequence[float]] = None,
                 severity: Optional[int] = None,
                 seed: Optional[int] = 0) -> None:
        super().__init__(severity, seed, modality)
        if encoding is not None and encoding not in MODALITY_ENCODINGS:
            raise ValueError(f'ModalityMissing: unknown encoding '
                             f'{encoding!r}; choose one of '
                             f'{MODALITY_ENCODINGS}.')
        if encoding in DEPTH_ENCODINGS:
            check_depth_encoding(encoding, value_range, 'ModalityMissing')
        self.encoding = encoding
        self.scale = float(scale)
        self.value_range = None if value_range is None else tuple(
            float(v) for v in value_range)

    def missing_value(self, results: dict) -> float:
        """The missing value of the modality in this sample's encoding."""
        if self.encoding is not None:
            return modality_missing_value(self.encoding, self.scale,
                                          self.value_range)
        enc = sample_encoding(results, self.modality)
        if enc is None:
            enc = dict(
                encoding=DEFAULT_ENCODINGS.get(self.modality, 'image'),
                scale=1.0,
                range=None)
        return modality_missing_value(enc['encoding'], enc['scale'],
                                      enc['range'])

    def transform(self, results: dict) -> dict:
        """Blank ``modality`` in ``results['img']`` (H, W, 3K); nothing
        else changes."""
        channels = modality_channels(results, self.modality,
                                     type(self).__name__)
        value = self.missing_value(results)
        settle_unaligned(results, channel_range(channels))
        img = results['img']
        if img.dtype != np.float32:
            img = img.astype(np.float32)
        img[..., channels] = value
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(modality={self.modality!r}, '
                f'encoding={self.encoding!r})')


@TRANSFORMS.register_module()
class DepthHoles(_DepthCorruption):
    """Holes in the depth map, where real sensors lose the signal.

    Exactly ``fraction`` of the pixels (rounded to whole pixels) are set to
    the missing value. Up to ``prone_share`` of them are taken from the
    pixels where structured-light and time-of-flight sensors typically fail:
    very dark surfaces (RGB luma < ``dark_below``, IR absorbed), very bright
    ones (luma > ``bright_above``, specular-like) and far ones (beyond
    ``far_range`` metres; not for 'hha'); the rest are anywhere. Both parts
    are blobs: the pixels are chosen by the highest values of a smooth
    random field (white noise blurred with a Gaussian of sigma ``blob_size``
    x the short image side), so holes grow as connected regions, and a
    higher severity (same seed) contains the holes of a lower one.

    Levels: ``fraction`` = 0.05, 0.10, 0.20, 0.35, 0.50.

    Args:
        severity (int): 1..5. Defaults to 3.
        fraction (float, optional): Overrides the level's hole fraction.
        prone_share (float): Share of the holes put on failure-prone pixels
            (as far as there are enough of them). Defaults to 0.5.
        dark_below (float): Luma (0..255) below which a surface counts as
            black. Defaults to 30.
        bright_above (float): Luma above which it counts as specular.
            Defaults to 240.
        far_range (float, optional): Metres beyond which depth counts as
            out of range; None: no range limit. Defaults to 6.0.
        blob_size (float): Blob scale relative to the short image side.
            Defaults to 0.03.
        **kwargs: ``seed`` and the depth encoding, see
            :class:`_DepthCorruption`.
    """
    NAME = 'depth_holes'
    LEVELS = tuple(dict(fraction=f) for f in (0.05, 0.10, 0.20, 0.35, 0.50))

    def __init__(self,
                 severity: int = 3,
                 fraction: Optional[float] = None,
                 prone_share: float = 0.5,
                 dark_below: float = 30.,
                 bright_above: float = 240.,
                 far_range: Optional[float] = 6.0,
                 blob_size: float = 0.03,
                 **kwargs) -> None:
        super().__init__(severity, **kwargs)
        self._override(fraction=fraction)
        if not 0 <= self.params['fraction'] <= 1:
            raise ValueError('DepthHoles: fraction must be in [0, 1], got '
                             f"{self.params['fraction']}.")
        if not 0 <= prone_share <= 1:
            raise ValueError('DepthHoles: prone_share must be in [0, 1], '
                             f'got {prone_share}.')
        if not blob_size > 0:
            raise ValueError(f'DepthHoles: blob_size must be > 0, got '
                             f'{blob_size}.')
        self.prone_share = float(prone_share)
        self.dark_below = float(dark_below)
        self.bright_above = float(bright_above)
        self.far_range = None if far_range is None else float(far_range)
        self.blob_size = float(blob_size)

    def prone_mask(self, img: np.ndarray) -> np.ndarray:
        """(H, W) bool: dark, bright or far pixels."""
        luma = _luma(img[..., RGB_CHANNELS])
        prone = (luma < self.dark_below) | (luma > self.bright_above)
        if self.far_range is not None and self.depth_encoding != 'hha':
            prone |= self.to_metres(img[..., 3]) > self.far_range
        return prone

    def hole_mask(self, img: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
        """(H, W) bool: the pixels to blank (``fraction`` of them)."""
        h, w = img.shape[:2]
        total = int(round(self.params['fraction'] * h * w))
        sigma = max(self.blob_size * min(h, w), 0.5)
        field = cv2.GaussianBlur(
            rng.standard_normal((h, w)).astype(np.float32), (0, 0),
            sigmaX=sigma,
            sigmaY=sigma,
            borderType=cv2.BORDER_REFLECT_101)
        field = field.ravel()
        holes = np.zeros(h * w, bool)
        if total == 0:
            return holes.reshape(h, w)
        prone = np.flatnonzero(self.prone_mask(img).ravel())
        n_prone = min(int(round(self.prone_share * total)), prone.size)
        if n_prone > 0:
            top = np.argpartition(-field[prone], n_prone - 1)[:n_prone]
            holes[prone[top]] = True
        rest = total - n_prone
        if rest > 0:
            free = np.flatnonzero(~holes)
            top = np.argpartition(-field[free], rest - 1)[:rest]
            holes[free[top]] = True
        return holes.reshape(h, w)

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        holes = self.hole_mask(img, rng)
        img[holes, DEPTH_CHANNELS] = self.missing


@TRANSFORMS.register_module()
class DepthNoise(_DepthCorruption):
    """Depth noise that grows with distance, as structured light: every
    measured pixel gets independent Gaussian noise with
    ``sigma(z) = a * z**2`` (z and sigma in metres; Kinect v1-class
    sensors measure roughly a = 0.002..0.003 1/m). Missing pixels stay
    missing; noisy depth is kept >= 1 stored unit so it never turns into
    "missing" by accident.

    Levels: ``a`` = 0.0025, 0.005, 0.01, 0.02, 0.04 1/m (sigma at 2 m:
    1, 2, 4, 8, 16 cm; at 4 m: 4, 8, 16, 32, 64 cm).

    Args:
        severity (int): 1..5. Defaults to 3.
        a (float, optional): Overrides the level's coefficient (1/m).
        **kwargs: ``seed`` and the depth encoding (needs metric depth, not
            'hha'), see :class:`_DepthCorruption`.
    """
    NAME = 'depth_noise'
    NEEDS_METRIC = True
    LEVELS = tuple(dict(a=a) for a in (0.0025, 0.005, 0.01, 0.02, 0.04))

    def __init__(self,
                 severity: int = 3,
                 a: Optional[float] = None,
                 **kwargs) -> None:
        super().__init__(severity, **kwargs)
        self._override(a=a)
        if not self.params['a'] >= 0:
            raise ValueError(f"DepthNoise: a must be >= 0, got "
                             f"{self.params['a']}.")

    def sigma(self, z: np.ndarray) -> np.ndarray:
        """Noise standard deviation (metres) at depth ``z`` (metres)."""
        return self.params['a'] * np.square(z)

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        valid = self.valid_mask(img)
        z = self.to_metres(img[..., 3].astype(np.float64))
        noisy = z + rng.standard_normal(z.shape) * self.sigma(z)
        noisy = np.maximum(noisy, self.depth_unit)
        depth = np.where(valid, self.from_metres(noisy), self.missing)
        self._set_depth(img, depth.astype(np.float32))


@TRANSFORMS.register_module()
class DepthQuantisation(_DepthCorruption):
    """Coarse depth resolution, as disparity-based sensors have: the
    disparity 1/z is rounded to a multiple of ``step`` (1/m), so the depth
    step grows as ``step * z**2`` (step x 1 m at 1 m). Deterministic (no
    randomness); missing pixels stay missing; a disparity that would round
    to 0 is kept at one step.

    Levels: ``step`` = 0.005, 0.01, 0.02, 0.04, 0.08 1/m (depth step at
    2 m: 2, 4, 8, 16, 32 cm).

    Args:
        severity (int): 1..5. Defaults to 3.
        step (float, optional): Overrides the level's disparity step (1/m).
        **kwargs: ``seed`` (unused) and the depth encoding (needs metric
            depth, not 'hha'), see :class:`_DepthCorruption`.
    """
    NAME = 'depth_quantisation'
    NEEDS_METRIC = True
    LEVELS = tuple(dict(step=s) for s in (0.005, 0.01, 0.02, 0.04, 0.08))

    def __init__(self,
                 severity: int = 3,
                 step: Optional[float] = None,
                 **kwargs) -> None:
        super().__init__(severity, **kwargs)
        self._override(step=step)
        if not self.params['step'] > 0:
            raise ValueError(f"DepthQuantisation: step must be > 0, got "
                             f"{self.params['step']}.")

    def quantise(self, z: np.ndarray) -> np.ndarray:
        """Quantised depth (metres) of ``z`` (metres, > 0)."""
        step = self.params['step']
        k = np.maximum(np.round(1.0 / (z * step)), 1.0)
        return 1.0 / (k * step)

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        valid = self.valid_mask(img)
        z = self.to_metres(img[..., 3].astype(np.float64))
        z = np.where(valid & (z > 0), z, 1.0)
        depth = np.where(valid, self.from_metres(self.quantise(z)),
                         self.missing)
        self._set_depth(img, depth.astype(np.float32))


@TRANSFORMS.register_module()
class DepthMisregistration(_DepthCorruption):
    """Depth registered a few pixels off the RGB image: the depth channels
    are rotated by ``rotation`` degrees (random sign) about the image
    centre and shifted by ``shift`` pixels in a random direction (nearest
    neighbour, so no depth is blended across edges); pixels uncovered at
    the border become missing. RGB and the label stay where they are.

    Levels: ``shift`` = 2, 4, 6, 8, 12 px and ``rotation`` = 0.5, 1, 1.5,
    2, 3 degrees, in pixels of the image as loaded (before any resize of
    the test pipeline).

    Args:
        severity (int): 1..5. Defaults to 3.
        shift (float, optional): Overrides the level's shift (pixels).
        rotation (float, optional): Overrides the level's rotation
            (degrees).
        direction (float, optional): Fixed shift direction in degrees
            (0 = +x, 90 = +y); None draws it per sample. Defaults to None.
        **kwargs: ``seed`` and the depth encoding, see
            :class:`_DepthCorruption`.
    """
    NAME = 'depth_misregistration'
    LEVELS = tuple(
        dict(shift=s, rotation=r)
        for s, r in ((2, 0.5), (4, 1.0), (6, 1.5), (8, 2.0), (12, 3.0)))

    def __init__(self,
                 severity: int = 3,
                 shift: Optional[float] = None,
                 rotation: Optional[float] = None,
                 direction: Optional[float] = None,
                 **kwargs) -> None:
        super().__init__(severity, **kwargs)
        self._override(shift=shift, rotation=rotation)
        self.direction = direction

    def matrix(self, shape: Tuple[int, int],
               rng: np.random.Generator) -> np.ndarray:
        """The 2x3 affine map (destination <- source) of one sample."""
        h, w = shape
        if self.direction is None:
            theta = rng.uniform(0, 2 * math.pi)
        else:
            theta = math.radians(self.direction)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        mat = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2),
                                      sign * self.params['rotation'], 1.0)
        mat[0, 2] += self.params['shift'] * math.cos(theta)
        mat[1, 2] += self.params['shift'] * math.sin(theta)
        return mat

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        h, w = img.shape[:2]
        depth = np.ascontiguousarray(img[..., DEPTH_CHANNELS])
        img[..., DEPTH_CHANNELS] = cv2.warpAffine(
            depth,
            self.matrix((h, w), rng), (w, h),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(self.missing, ) * 3)


class _RGBCorruption(_Corruption):
    """A corruption of the RGB channels (0-2, values 0..255).

    Args:
        severity (int): 1..5.
        seed (int, optional): See the module doc. Defaults to 0.
        modality (str): 'rgb', the only modality the RGB corruptions act
            on (an argument for a uniform interface; another name is a
            ValueError). Defaults to 'rgb'.
    """
    MODALITY = 'rgb'


@TRANSFORMS.register_module()
class RGBMissing(_RGBCorruption):
    """No RGB image: channels 0-2 become 0 (black; ``-mean / std`` after
    normalisation). One level; ``severity`` is ignored."""
    NAME = 'rgb_missing'
    LEVELS = None

    def __init__(self,
                 severity: Optional[int] = None,
                 seed: Optional[int] = 0,
                 modality: str = 'rgb') -> None:
        super().__init__(severity, seed, modality)

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        img[..., RGB_CHANNELS] = RGB_MISSING_VALUE


@TRANSFORMS.register_module()
class RGBLowLight(_RGBCorruption):
    """A dark, noisy image: ``y = 255 * (x / 255) ** gamma``, then Gaussian
    noise with variance ``read_noise**2 + shot_noise * y`` (sensor read
    noise plus signal-dependent shot noise, in 0..255 units), rounded and
    clipped to 0..255 as an 8-bit camera would store it.

    Levels (gamma, read_noise, shot_noise): (1.5, 2, 0.5), (2.0, 3, 1.0),
    (2.5, 4, 1.5), (3.0, 6, 2.0), (3.5, 8, 2.5). Mid grey (128) becomes
    90, 64, 45, 32, 23.

    Args:
        severity (int): 1..5. Defaults to 3.
        gamma, read_noise, shot_noise (float, optional): Override the
            level's values.
        seed (int, optional): See the module doc. Defaults to 0.
    """
    NAME = 'rgb_low_light'
    LEVELS = tuple(
        dict(gamma=g, read_noise=r, shot_noise=s)
        for g, r, s in ((1.5, 2., 0.5), (2.0, 3., 1.0), (2.5, 4., 1.5),
                        (3.0, 6., 2.0), (3.5, 8., 2.5)))

    def __init__(self,
                 severity: int = 3,
                 gamma: Optional[float] = None,
                 read_noise: Optional[float] = None,
                 shot_noise: Optional[float] = None,
                 seed: Optional[int] = 0,
                 modality: str = 'rgb') -> None:
        super().__init__(severity, seed, modality)
        self._override(
            gamma=gamma, read_noise=read_noise, shot_noise=shot_noise)
        for key in ('gamma', 'read_noise', 'shot_noise'):
            if not self.params[key] >= 0:
                raise ValueError(f'RGBLowLight: {key} must be >= 0, got '
                                 f'{self.params[key]}.')

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        p = self.params
        rgb = np.clip(img[..., RGB_CHANNELS], 0, 255).astype(np.float64)
        dark = 255. * np.power(rgb / 255., p['gamma'])
        sigma = np.sqrt(p['read_noise']**2 + p['shot_noise'] * dark)
        noisy = dark + rng.standard_normal(dark.shape) * sigma
        img[..., RGB_CHANNELS] = np.clip(np.round(noisy), 0, 255)


@TRANSFORMS.register_module()
class RGBMotionBlur(_RGBCorruption):
    """Camera shake: the RGB channels convolved with a line of ``length``
    pixels (equal weights) at ``angle`` degrees (drawn per sample unless
    given), reflected borders.

    Levels: ``length`` = 3, 5, 9, 13, 17 px.

    Args:
        severity (int): 1..5. Defaults to 3.
        length (int, optional): Overrides the level's kernel length (odd).
        angle (float, optional): Fixed blur direction in degrees
            (0 = horizontal); None draws it uniformly in [0, 180).
        seed (int, optional): See the module doc. Defaults to 0.
    """
    NAME = 'rgb_motion_blur'
    LEVELS = tuple(dict(length=n) for n in (3, 5, 9, 13, 17))

    def __init__(self,
                 severity: int = 3,
                 length: Optional[int] = None,
                 angle: Optional[float] = None,
                 seed: Optional[int] = 0,
                 modality: str = 'rgb') -> None:
        super().__init__(severity, seed, modality)
        self._override(length=length)
        n = self.params['length']
        if int(n) != n or n < 1 or n % 2 == 0:
            raise ValueError(f'RGBMotionBlur: length must be a positive odd '
                             f'int, got {n}.')
        self.params['length'] = int(n)
        self.angle = angle

    def kernel(self, angle: float) -> np.ndarray:
        """(L, L) float32 line kernel at ``angle`` degrees, sum 1."""
        n = self.params['length']
        c = (n - 1) / 2
        kernel = np.zeros((n, n), np.float32)
        t = np.linspace(-c, c, 4 * n)
        rad = math.radians(angle)
        xs = np.clip(np.round(c + t * math.cos(rad)), 0, n - 1).astype(int)
        ys = np.clip(np.round(c - t * math.sin(rad)), 0, n - 1).astype(int)
        kernel[ys, xs] = 1.0
        return kernel / kernel.sum()

    def _apply(self, img: np.ndarray, rng: np.random.Generator) -> None:
        angle = rng.uniform(0, 180) if self.angle is None else self.angle
        rgb = np.ascontiguousarray(img[..., RGB_CHANNELS])
        img[..., RGB_CHANNELS] = cv2.filter2D(
            rgb, -1, self.kernel(angle), borderType=cv2.BORDER_REFLECT_101)


#: Short names of the corruptions (as the robustness tool takes them).
CORRUPTIONS: Dict[str, Type[_Corruption]] = {
    cls.NAME: cls
    for cls in (DepthMissing, DepthHoles, DepthNoise, DepthQuantisation,
                DepthMisregistration, RGBLowLight, RGBMotionBlur, RGBMissing)
}

#: What a name ``<modality>_<kind>`` may end with besides the names of
#: :data:`CORRUPTIONS`: ``_missing`` (any modality) and the depth
#: corruptions' kinds (any depth-like modality).
MODALITY_PATTERNS = ('<modality>_missing', ) + tuple(
    f'<modality>_{n[len("depth_"):]}' for n, c in CORRUPTIONS.items()
    if c.MODALITY == 'depth' and n != 'depth_missing')


def parse_corruption(name: str) -> Tuple[Type[_Corruption], Optional[str]]:
    """The class and the modality of a corruption name.

    A name of :data:`CORRUPTIONS` gives its class and None (the class's
    own modality); ``<modality>_missing`` gives :class:`ModalityMissing`
    (``depth_missing`` / ``rgb_missing`` stay :class:`DepthMissing` /
    :class:`RGBMissing`); ``<modality>_holes``, ``_noise``,
    ``_quantisation``, ``_misregistration`` give the depth corruption for
    that (depth-like) modality, e.g. ``lidar_holes`` ->
    ``(DepthHoles, 'lidar')``.

    Raises:
        KeyError: Any other name; the message lists the valid names.
    """
    if name in CORRUPTIONS:
        return CORRUPTIONS[name], None
    if isinstance(name, str):
        modality, _, kind = name.rpartition('_')
        if modality and kind == 'missing':
            return ModalityMissing, modality
        cls = CORRUPTIONS.get(f'depth_{kind}')
        if modality and cls is not None and cls.MODALITY == 'depth':
            return cls, modality
    raise KeyError(f'Unknown corruption {name!r}; valid names: '
                   f'{", ".join(CORRUPTIONS)}, or '
                   f'{", ".join(MODALITY_PATTERNS)} for a modality of the '
                   "config (e.g. 'thermal_missing').")


def corruption_class(name: str) -> Type[_Corruption]:
    """The class of a corruption by name (see :func:`parse_corruption`);
    a KeyError lists the valid names."""
    return parse_corruption(name)[0]


def build_corruption(name: str,
                     severity: Optional[int] = 3,
                     seed: Optional[int] = 0,
                     depth_encoding: str = 'raw',
                     depth_scale: float = 1.0,
                     depth_range: Optional[Sequence[float]] = None,
                     depth_unit: float = 1e-3,
                     **kwargs) -> dict:
    """The transform config of corruption ``name`` at ``severity``.

    ``name`` is a key of :data:`CORRUPTIONS` or ``<modality>_<kind>`` (see
    :func:`parse_corruption`), e.g. ``'thermal_missing'``,
    ``'lidar_holes'``. Depth corruptions get the depth encoding arguments
    (the encoding of the corrupted modality), RGB ones and
    ``<modality>_missing`` not (:class:`ModalityMissing` reads the
    sample's encoding).

    Returns:
        dict: A config for ``TRANSFORMS.build`` (``type`` = the class name).
    """
    cls, modality = parse_corruption(name)
    cfg = dict(type=cls.__name__, severity=severity, seed=seed, **kwargs)
    if modality is not None:
        cfg['modality'] = modality
    if cls.MODALITY == 'depth':
        cfg.update(
            depth_encoding=depth_encoding,
            depth_scale=depth_scale,
            depth_range=None if depth_range is None else list(depth_range),
            depth_unit=depth_unit)
    return cfg


@TRANSFORMS.register_module()
class RandomDepthDegradation(BaseTransform):
    """Training augmentation: with probability ``prob``, one depth
    corruption (chosen uniformly from ``corruptions``) at a severity drawn
    uniformly from ``severities``, with fresh randomness every time
    (``seed=None`` inside).

    Required Keys:

    - img (np.float32, (H, W, 6))

    Modified Keys:

    - img (channels 3-5 only)

    Args:
        prob (float): Probability of degrading a sample. Defaults to 0.3.
        corruptions (Sequence[str]): Short names of depth corruptions.
            Defaults to holes, noise, quantisation and misregistration.
        severities (Sequence[int]): Severities to draw from. Defaults to
            (1, 2, 3).
        depth_encoding, depth_scale, depth_range, depth_unit: The loader's
            encoding and the metres per stored unit, see
            :class:`DepthNoise`.
    """

    def __init__(self,
                 prob: float = 0.3,
                 corruptions: Sequence[str] = ('depth_holes', 'depth_noise',
                                               'depth_quantisation',
                                               'depth_misregistration'),
                 severities: Sequence[int] = (1, 2, 3),
                 depth_encoding: str = 'raw',
                 depth_scale: float = 1.0,
                 depth_range: Optional[Sequence[float]] = None,
                 depth_unit: float = 1e-3) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(
                f'RandomDepthDegradation: prob must be in [0, 1], got {prob}.')
        if not corruptions or not severities:
            raise ValueError('RandomDepthDegradation: corruptions and '
                             'severities must not be empty.')
        for name in corruptions:
            if corruption_class(name).MODALITY != 'depth':
                depth_names = [
                    n for n, c in CORRUPTIONS.items() if c.MODALITY == 'depth'
                ]
                raise ValueError(
                    f'RandomDepthDegradation: {name!r} is not a depth '
                    f'corruption; choose from {depth_names}.')
        self.prob = float(prob)
        self.corruptions = tuple(corruptions)
        self.severities = tuple(int(s) for s in severities)
        self.transforms = [[
            TRANSFORMS.build(
                build_corruption(
                    name,
                    severity=s,
                    seed=None,
                    depth_encoding=depth_encoding,
                    depth_scale=depth_scale,
                    depth_range=depth_range,
                    depth_unit=depth_unit)) for s in self.severities
        ] for name in self.corruptions]

    def transform(self, results: dict) -> dict:
        """Maybe degrade the depth of ``results['img']``.

        Args:
            results (dict): Result dict with ``img`` (H, W, 6).

        Returns:
            dict: The dict, its depth channels possibly corrupted.
        """
        if np.random.rand() >= self.prob:
            return results
        i = np.random.randint(len(self.corruptions))
        j = np.random.randint(len(self.severities))
        return self.transforms[i][j](results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'corruptions={self.corruptions}, '
                f'severities={self.severities})')

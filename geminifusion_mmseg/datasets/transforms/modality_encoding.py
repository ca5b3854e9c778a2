"""How one modality's stored values become its 3 input channels.

Every part of the package that turns a modality's stored values into
network input, or back, goes through one :class:`ModalityEncoding`: the
dataset loaders (numpy, :meth:`ModalityEncoding.encode`), the deployable
wrapper inside an exported graph (torch,
:meth:`ModalityEncoding.encode_tensor`),
the corruptions (:meth:`~ModalityEncoding.to_metres` /
:meth:`~ModalityEncoding.from_metres`), modality dropout and the inference
API (:meth:`~ModalityEncoding.missing_value`).

==============  ============================================================
encoding        the 3 channels of the modality
==============  ============================================================
``'rgb'``       the RGB image (0..255), only for the modality ``'rgb'``
``'image'``     the image as the DeLiVER code reads its modalities: one
                channel repeated to 3, 3 channels as they are, 4 channels
                cut to the first 3; values as stored
``'thermal'``   the image as the MFNet code reads thermal images: one
                channel repeated, 3 as they are, 4 channels (an MFNet RGB-T
                PNG) -> the 4th (thermal) repeated to 3
``'raw'``       a depth map as stored, repeated to 3 (the published setting)
``'scale'``     stored value x ``scale`` (e.g. 1e-3: millimetres -> metres)
``'clip'``      ``(clip(v, min, max) - min) * 255 / (max - min)`` with
                ``range = (min, max)``
``'hha'``       a 3-channel HHA image as stored
==============  ============================================================
"""
import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Set, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor

#: Encodings of a depth-like modality (a distance per pixel, or HHA).
DEPTH_ENCODINGS = ('raw', 'scale', 'clip', 'hha')
#: Depth encodings with a known relation to metres.
METRIC_ENCODINGS = ('raw', 'scale', 'clip')
#: Every encoding of one modality (3 channels each).
MODALITY_ENCODINGS = ('rgb', 'image', 'thermal') + DEPTH_ENCODINGS
#: Encoding of a modality the config does not name.
DEFAULT_ENCODINGS = dict(rgb='rgb', depth='raw', hha='hha', thermal='thermal')
#: Value of the RGB channels when the camera gives nothing (black).
RGB_MISSING_VALUE = 0.0

EncodingCfg = Union[str, dict, 'ModalityEncoding']

#: Files whose NaN/inf values were reported (one warning per file and
#: process).
_NON_FINITE_REPORTED: Set[str] = set()


def replace_non_finite(values: np.ndarray,
                       source: str,
                       once: bool = True) -> np.ndarray:
    """NaN and inf of a float image -> 0, the stored "no measurement".

    A float depth (or other float modality) file may mark pixels without a
    measurement as NaN or inf; the network must never see them. They are
    set to 0, the value every encoding reads as missing (see
    :meth:`ModalityEncoding.missing_value`), with a warning naming
    ``source`` and the count. Used by the dataset loaders and the inference
    API alike. Integer arrays are returned as they are.

    Args:
        values (np.ndarray): Any shape and dtype.
        source (str): Names the input in the warning (its path).
        once (bool): Warn only the first time ``source`` has non-finite
            values in this process (data loaders read a file every epoch).
            Defaults to True.

    Returns:
        np.ndarray: ``values``, or a copy with the non-finite values 0.
    """
    if not np.issubdtype(values.dtype, np.floating):
        return values
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    if not once or source not in _NON_FINITE_REPORTED:
        if once:
            _NON_FINITE_REPORTED.add(source)
        print_log(
            f'{source} has {int(bad.sum())} NaN/inf value(s) of '
            f'{bad.size}; they are set to 0 (no measurement, i.e. missing '
            'depth).' +
            (' Further reads of this file are not reported.' if once else ''),
            logger='current',
            level=logging.WARNING)
    return np.where(bad, 0, values).astype(values.dtype)


@dataclass(frozen=True)
class ModalityEncoding:
    """The encoding of one modality: stored values <-> 3 input channels.

    Args:
        encoding (str): One of :data:`MODALITY_ENCODINGS` (see the module
            docstring). Defaults to 'image'.
        scale (float): Factor of ``'scale'``. Defaults to 1.0.
        range (tuple[float, float], optional): ``(min, max)`` of
            ``'clip'`` (required there, ``max > min``).

    Example::

        >>> enc = ModalityEncoding.parse('depth', dict(encoding='scale',
        ...                                            scale=1e-3))
        >>> enc.encode(np.full((2, 2), 1500, np.uint16)).shape
        (2, 2, 3)
        >>> enc.missing_value()
        0.0
    """
    encoding: str = 'image'
    scale: float = 1.0
    range: Optional[Tuple[float, float]] = None

    def __post_init__(self) -> None:
        if self.encoding not in MODALITY_ENCODINGS:
            raise ValueError(f'Unknown modality encoding {self.encoding!r}; '
                             f'choose one of {MODALITY_ENCODINGS}.')
        rng = self.range
        if self.encoding == 'clip' and (rng is None or len(rng) != 2
                                        or not rng[1] > rng[0]):
            raise ValueError("The encoding 'clip' needs range=(min, max) "
                             f'with max > min, got {rng!r}.')
        object.__setattr__(self, 'scale', float(self.scale))
        if rng is not None:
            object.__setattr__(self, 'range', tuple(float(v) for v in rng))

    # ------------------------------------------------------------------
    # construction
    @classmethod
    def parse(cls, name: str, cfg: EncodingCfg) -> 'ModalityEncoding':
        """The encoding of modality ``name`` from a config value.

        Args:
            name (str): The modality (``'rgb'`` must use, and is the only
                one allowed, the encoding ``'rgb'``).
            cfg (str | dict | ModalityEncoding): ``'clip'``, or
                ``dict(encoding='clip', range=(0, 1e4))`` (keys encoding,
                scale, range).

        Raises:
            ValueError: naming ``encodings[name]`` and the bad value.
        """
        if isinstance(cfg, ModalityEncoding):
            cfg = cfg.as_dict()
        if isinstance(cfg, str):
            cfg = dict(encoding=cfg)
        elif not isinstance(cfg, dict):
            raise ValueError(f'encodings[{name!r}] must be a string or a '
                             f'dict, got {cfg!r}.')
        cfg = dict(cfg)
        unknown = set(cfg) - {'encoding', 'scale', 'range'}
        if unknown or 'encoding' not in cfg:
            raise ValueError(
                f'encodings[{name!r}] must name an encoding and may give '
                "scale and range, e.g. dict(encoding='clip', range=(0, "
                f'10000)); got {cfg!r}.')
        enc = cfg['encoding']
        if enc not in MODALITY_ENCODINGS:
            raise ValueError(f'encodings[{name!r}]: unknown encoding '
                             f'{enc!r}; choose one of {MODALITY_ENCODINGS}.')
        if (enc == 'rgb') != (name == 'rgb'):
            raise ValueError(
                f"encodings[{name!r}] = {enc!r}: the encoding 'rgb' is the "
                "one and only encoding of the modality 'rgb'.")
        rng = cfg.get('range')
        if enc == 'clip' and (rng is None or len(rng) != 2
                              or not rng[1] > rng[0]):
            raise ValueError(
                f"encodings[{name!r}]: 'clip' needs range=(min, max) with "
                f'max > min, got {rng!r}.')
        return cls(enc, cfg.get('scale', 1.0), rng)

    @classmethod
    def default_for(cls, name: str) -> 'ModalityEncoding':
        """The encoding of a modality the config gives none for
        (:data:`DEFAULT_ENCODINGS`, else ``'image'``)."""
        return cls(DEFAULT_ENCODINGS.get(name, 'image'))

    @classmethod
    def from_dict(cls, d: dict) -> 'ModalityEncoding':
        """Inverse of :meth:`as_dict` (a ``results['modality_encodings']``
        entry)."""
        return cls(d['encoding'], d.get('scale', 1.0), d.get('range'))

    def as_dict(self) -> dict:
        """``dict(encoding=..., scale=..., range=...)``, the form written to
        ``results['modality_encodings']`` and the ONNX metadata."""
        return dict(encoding=self.encoding, scale=self.scale, range=self.range)

    # ------------------------------------------------------------------
    # properties
    @property
    def is_depth(self) -> bool:
        """A depth-like modality (one of :data:`DEPTH_ENCODINGS`)."""
        return self.encoding in DEPTH_ENCODINGS

    @property
    def is_metric(self) -> bool:
        """Encoded values convert to metres (:data:`METRIC_ENCODINGS`)."""
        return self.encoding in METRIC_ENCODINGS

    # ------------------------------------------------------------------
    # numpy
    def encode(self, img: np.ndarray, source: str = 'image') -> np.ndarray:
        """The 3 input channels of one decoded image.

        Args:
            img (np.ndarray): (H, W) or (H, W, C), RGB(A) order, any
                numeric dtype, values as stored.
            source (str): Names the input in errors (e.g. its path).

        Returns:
            np.ndarray: float32 (H, W, 3). NaN/inf of a float image are read
            as 0, "no measurement" (:func:`replace_non_finite`, one warning
            per file).
        """
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if self.is_depth:
            return self._encode_depth(img, source)
        img = replace_non_finite(img, source)
        if self.encoding == 'rgb':
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f'{source} has shape {img.shape}; an RGB '
                                 'image is (H, W, 3).')
            return img.astype(np.float32)
        if img.ndim == 2:
            return np.repeat(img.astype(np.float32)[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(
                f'{source} has shape {img.shape}; expected (H, W) or (H, W, '
                f'C) with C = 1, 3 or 4 for the encoding {self.encoding!r}.')
        if img.shape[2] == 4:
            if self.encoding == 'thermal':
                return np.repeat(img[..., 3:4].astype(np.float32), 3, axis=2)
            img = img[..., :3]
        return img.astype(np.float32)

    def _encode_depth(self, depth: np.ndarray, source: str) -> np.ndarray:
        """:meth:`encode` of a depth encoding (``depth``: (H, W) or
        (H, W, 3))."""
        if depth.ndim == 3 and depth.shape[2] != 3:
            raise ValueError(
                f'Depth image {source} has {depth.shape[2]} channels; '
                'expected 1 (a depth map) or 3 (e.g. HHA).')
        if depth.ndim not in (2, 3):
            raise ValueError(f'Depth image {source} has shape {depth.shape}; '
                             'expected (H, W), (H, W, 1) or (H, W, 3).')
        depth = replace_non_finite(depth, f'Depth image {source}')
        if self.encoding == 'hha':
            if depth.ndim != 3:
                raise ValueError(
                    f"depth_encoding='hha' expects a 3-channel image, but "
                    f'{source} has one channel; use '
                    "depth_encoding='raw' for depth maps.")
            return depth.astype(np.float32)
        if depth.ndim == 3:
            if not ((depth[..., 0] == depth[..., 1]).all() and
                    (depth[..., 0] == depth[..., 2]).all()):
                raise ValueError(
                    f'Depth image {source} has 3 different channels, which '
                    f'depth_encoding={self.encoding!r} cannot read; '
                    "use depth_encoding='hha' for 3-channel encodings.")
            depth = depth[..., 0]
        depth = depth.astype(np.float32)
        if self.encoding == 'scale':
            depth *= self.scale
        elif self.encoding == 'clip':
            low, high = self.range
            depth = (np.clip(depth, low, high) - low) * (255. / (high - low))
        return np.repeat(depth[..., None], 3, axis=2)

    def missing_value(self) -> float:
        """The encoded value of a pixel without a measurement.

        "Missing" is what a sensor stores for no signal, a stored 0, passed
        through the encoding: 0 (black) for ``'rgb'``, 0 for ``'image'``,
        ``'thermal'`` and ``'hha'`` (a dead thermal camera, an empty event
        frame, a LiDAR image without returns, a black HHA image), and for
        the metric depth encodings what a stored 0 becomes (0, except for
        ``'clip'`` with ``min > 0``).

        Returns:
            float: The value of the modality's 3 channels.
        """
        if self.encoding == 'rgb':
            return RGB_MISSING_VALUE
        if self.encoding == 'hha':
            return 0.0
        dtype = np.float32 if self.is_depth else np.uint8
        return float(self.encode(np.zeros((1, 1), dtype))[0, 0, 0])

    # ------------------------------------------------------------------
    # metric conversion (metric depth encodings only)
    def _check_metric(self, what: str) -> None:
        if not self.is_metric:
            raise ValueError(
                f'{what} needs a metric depth encoding {METRIC_ENCODINGS}; '
                f'{self.encoding!r} has no relation to metres.')

    def to_metres(self, enc: np.ndarray, unit: float) -> np.ndarray:
        """Encoded depth (any shape) -> metres.

        Args:
            enc (np.ndarray): Encoded values (one channel of the modality).
            unit (float): Metres per stored unit (1e-3 for millimetres).
        """
        self._check_metric('to_metres')
        if self.encoding == 'raw':
            stored = enc
        elif self.encoding == 'scale':
            stored = enc / self.scale
        else:  # clip
            low, high = self.range
            stored = enc * ((high - low) / 255.) + low
        return stored * unit

    def from_metres(self, metres: np.ndarray, unit: float) -> np.ndarray:
        """Metres -> encoded depth (clipped to the range for ``'clip'``);
        the inverse of :meth:`to_metres`."""
        self._check_metric('from_metres')
        stored = metres / unit
        if self.encoding == 'raw':
            return stored
        if self.encoding == 'scale':
            return stored * self.scale
        low, high = self.range
        return (np.clip(stored, low, high) - low) * (255. / (high - low))

    # ------------------------------------------------------------------
    # torch (inside an exported graph)
    def encode_tensor(self, x: Tensor) -> Tensor:
        """:meth:`encode` for a batch of raw frames, in torch.

        The same arithmetic as :meth:`encode` in float32 (bit-identical on
        finite values), written with ops that export to ONNX.

        Args:
            x (Tensor): (B, H, W) or (B, H, W, C) (C = 1, 3, or 4 for
                'image' / 'thermal'; 3 for 'rgb' and 'hha'), any numeric
                dtype, values as stored.

        Returns:
            Tensor: (B, 3, H, W) float32.
        """
        if x.dim() == 4 and x.shape[3] == 1:
            x = x[..., 0]
        if x.is_floating_point():
            x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
        x = x.to(torch.float32)
        if x.dim() == 3:
            if self.encoding in ('rgb', 'hha'):
                raise ValueError(
                    f'The encoding {self.encoding!r} expects (B, H, W, 3) '
                    f'frames, got {tuple(x.shape)}.')
            if self.encoding == 'scale':
                x = x * self.scale
            elif self.encoding == 'clip':
                low, high = self.range
                x = (x.clamp(low, high) - low) * (255. / (high - low))
            return x.unsqueeze(1).expand(-1, 3, -1, -1)
        if x.dim() != 4 or x.shape[3] not in (3, 4) or (
                x.shape[3] == 4 and self.encoding not in ('image', 'thermal')
        ) or (x.shape[3] == 3 and self.encoding in METRIC_ENCODINGS):
            raise ValueError(
                f'The encoding {self.encoding!r} cannot read frames of shape '
                f'{tuple(x.shape)}.')
        if x.shape[3] == 4:
            x = x[..., 3:4].expand(-1, -1, -1, 3) \
                if self.encoding == 'thermal' else x[..., :3]
        return x.permute(0, 3, 1, 2)


def parse_encodings(names: Sequence[str], cfg: Optional[dict] = None) -> dict:
    """``{name: ModalityEncoding}`` for modalities ``names``: the config's
    ``encodings`` entry where given, else :meth:`ModalityEncoding.default_for`.
    """
    cfg = cfg or {}
    return {
        n:
        ModalityEncoding.parse(n, cfg[n])
        if n in cfg else ModalityEncoding.default_for(n)
        for n in names
    }

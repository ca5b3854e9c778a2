"""What "no measurement" looks like in each input encoding.

A sample is one float32 (H, W, 6) image: channels 0-2 RGB (0..255),
channels 3-5 the depth encoding of :class:`LoadRGBDImageFromFile`. A missing
modality is written with the value a real sensor failure produces in that
encoding, so that a model sees at test time exactly what a dead sensor
would give it:

=================  ==========================================================
modality/encoding  missing value (channels 3-5, or 0-2 for RGB)
=================  ==========================================================
RGB                0 (black; after normalisation ``-mean / std``)
``'raw'``          0: depth sensors store 0 for "no measurement" (NYUDv2's
                   16-bit millimetres, SUN RGB-D's 8-bit maps)
``'scale'``        0 (= 0 x ``depth_scale``)
``'clip'``         what a stored 0 becomes: ``(clip(0, min, max) - min) *
                   255 / (max - min)``, i.e. 0 when ``min >= 0``
``'hha'``          0 in all three channels (a black HHA image, what HHA
                   tools write where depth is invalid)
=================  ==========================================================
"""
from typing import Optional, Sequence

import numpy as np

from .loading import DEPTH_ENCODINGS, encode_depth

#: Value of the RGB channels when the camera gives nothing (black).
RGB_MISSING_VALUE = 0.0

#: Channel slices of the 6-channel sample.
RGB_CHANNELS = slice(0, 3)
DEPTH_CHANNELS = slice(3, 6)
#: The depth channels as (start, stop).
DEPTH_CHANNEL_RANGE = (3, 6)


def depth_missing_value(
        depth_encoding: str = 'raw',
        depth_scale: float = 1.0,
        depth_range: Optional[Sequence[float]] = None) -> float:
    """The encoded value of a depth pixel without a measurement.

    Args:
        depth_encoding (str): As ``LoadRGBDImageFromFile(depth_encoding)``:
            'raw', 'scale', 'clip' or 'hha'.
        depth_scale (float): Factor of the 'scale' encoding.
        depth_range (tuple[float, float], optional): ``(min, max)`` of the
            'clip' encoding.

    Returns:
        float: The value of channels 3-5 where the sensor measured nothing
        (a stored 0 passed through the encoding; 0 for 'hha').
    """
    check_depth_encoding(depth_encoding, depth_range, 'depth_missing_value')
    if depth_encoding == 'hha':
        return 0.0
    zero = np.zeros((1, 1), np.float32)
    return float(
        encode_depth(zero, depth_encoding, depth_scale, depth_range)[0, 0, 0])


def check_depth_encoding(depth_encoding: str,
                         depth_range: Optional[Sequence[float]],
                         owner: str) -> None:
    """Raise a ValueError naming ``owner`` for an unusable encoding."""
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f'{owner}: unknown depth_encoding '
                         f'{depth_encoding!r}; choose one of '
                         f'{DEPTH_ENCODINGS} (the depth_encoding of the '
                         'LoadRGBDImageFromFile in the same pipeline).')
    if depth_encoding == 'clip' and (depth_range is None
                                     or len(depth_range) != 2
                                     or not depth_range[1] > depth_range[0]):
        raise ValueError(f"{owner}: depth_encoding='clip' needs "
                         'depth_range=(min, max) with max > min (as the '
                         f'loader), got {depth_range!r}.')


def check_rgbd_image(img: np.ndarray, owner: str) -> None:
    """Raise a ValueError naming ``owner`` unless ``img`` is (H, W, 6)."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or \
            img.shape[2] != 6:
        shape = getattr(img, 'shape', type(img).__name__)
        raise ValueError(
            f'{owner} expects the 6-channel RGB-D image of '
            f'LoadRGBDImageFromFile (H, W, 6) in results["img"], got '
            f'{shape}. Put it after the loader.')

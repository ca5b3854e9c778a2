"""What "no measurement" looks like in each input encoding, and which
channels hold which modality.

A sample is one float32 (H, W, 3K) image: channels 0-2 RGB (0..255), then
3 channels per modality in the order of ``results['modalities']`` (an RGB-D
sample: channels 3-5 the depth encoding of :class:`LoadRGBDImageFromFile`;
see :func:`modality_channels`). A missing
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
``'image'``,       0: a stored 0 (values are taken as stored): an empty
``'thermal'``      event frame, a LiDAR image without returns, a dead
                   thermal camera (:func:`modality_missing_value`)
=================  ==========================================================
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from .modality_encoding import RGB_MISSING_VALUE  # noqa: F401 (re-export)
from .modality_encoding import (DEPTH_ENCODINGS, MODALITY_ENCODINGS,
                                ModalityEncoding)

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
    return ModalityEncoding(depth_encoding, depth_scale,
                            depth_range).missing_value()


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


def sample_modalities(results: dict,
                      owner: str = 'This transform') -> Tuple[str, ...]:
    """The modality names of a loaded sample, in channel order, after
    checking that ``results['img']`` has 3 channels per modality.

    The loaders write the names to ``results['modalities']``
    (:class:`LoadMultiModalImageFromFile`: the config's list;
    :class:`LoadRGBDImageFromFile`: ``('rgb', 'depth')``). A sample without
    the key (built by hand) must be the 6-channel RGB-D image and is read
    as ``('rgb', 'depth')``.

    Args:
        results (dict): Result dict with ``img`` (H, W, 3K).
        owner (str): Names the caller in errors.

    Returns:
        tuple[str]: The K names; modality ``i`` is channels ``3i:3i+3``.

    Raises:
        ValueError: ``img`` is not (H, W, 3K) for the K names (or, without
            names, not (H, W, 6)).
    """
    img = results.get('img')
    names = results.get('modalities')
    if names is None:
        check_rgbd_image(img, owner)
        return ('rgb', 'depth')
    names = tuple(names)
    if not isinstance(img, np.ndarray) or img.ndim != 3 or \
            img.shape[2] != 3 * len(names):
        shape = getattr(img, 'shape', type(img).__name__)
        raise ValueError(
            f'{owner} expects results["img"] of shape (H, W, '
            f'{3 * len(names)}) for the modalities {list(names)} (3 '
            f'channels each), got {shape}.')
    return names


def modality_channels(results: dict,
                      name: str,
                      owner: str = 'This transform') -> slice:
    """The channels of modality ``name`` in ``results['img']``.

    A sample of K modalities has 3 channels per modality, stacked in the
    order of :func:`sample_modalities` (RGB 0:3, then 3:6, 6:9, ...).

    Example::

        >>> img = np.zeros((4, 4, 9), np.float32)
        >>> modality_channels(
        ...     dict(img=img, modalities=('rgb', 'depth', 'thermal')),
        ...     'thermal')
        slice(6, 9, None)

    Raises:
        KeyError: ``name`` is not a modality of the sample; the message
            names it and the sample's modalities.
        ValueError: See :func:`sample_modalities`.
    """
    names = sample_modalities(results, owner)
    if name not in names:
        raise KeyError(f'{owner}: no modality {name!r} in this sample; its '
                       f'modalities are {list(names)} (sample '
                       f'{results.get("img_path")}).')
    k = names.index(name)
    return slice(3 * k, 3 * k + 3)


def channel_range(channels: slice) -> Tuple[int, int]:
    """``slice(a, b)`` -> ``(a, b)``, as :func:`settle_unaligned` takes."""
    return (channels.start, channels.stop)


def sample_encoding(results: dict, name: str) -> Optional[dict]:
    """The loader's encoding of modality ``name`` (``dict(encoding=...,
    scale=..., range=...)``, from ``results['modality_encodings']``), or
    None for a sample without it."""
    encodings = results.get('modality_encodings')
    if not encodings or name not in encodings:
        return None
    return dict(encodings[name])


def modality_missing_value(
        encoding: str = 'image',
        scale: float = 1.0,
        value_range: Optional[Sequence[float]] = None) -> float:
    """The encoded value of a modality pixel without a measurement.

    As for depth (:func:`depth_missing_value`), "missing" is what a sensor
    stores for no signal, a stored 0, passed through the modality's
    encoding (:func:`~.multimodal.encode_modality`, the encoding of
    :class:`LoadMultiModalImageFromFile`): 0 for ``'image'`` and
    ``'thermal'`` (values as stored: a dead thermal camera, an empty event
    frame, a LiDAR image without returns), black (0) for ``'rgb'``, and
    :func:`depth_missing_value` for the depth encodings.

    Args:
        encoding (str): One of ``MODALITY_ENCODINGS``.
        scale (float): Factor of ``'scale'``.
        value_range (tuple[float, float], optional): ``(min, max)`` of
            ``'clip'``.

    Returns:
        float: The value of the modality's 3 channels where nothing was
        measured.
    """
    if encoding in DEPTH_ENCODINGS:
        return depth_missing_value(encoding, scale, value_range)
    if encoding not in MODALITY_ENCODINGS:
        raise ValueError(f'Unknown modality encoding {encoding!r}; choose '
                         f'one of {MODALITY_ENCODINGS}.')
    return ModalityEncoding(encoding, scale, value_range).missing_value()

"""Modalities stored at another size than the RGB image.

Some released copies hold a modality at another size than RGB. In the
TokenFusion NYUDv2 copy (the one GeminiFusion was trained on), the RGB
image and the label were cropped to remove their white border, while the
depth map is the full 480x640 Kinect frame. A dataset's ``size_mismatch``
(written into each sample's data info, like ``reduce_zero_label``) tells
the loaders what to do with such a modality:

=============  ===============================================================
``'error'``    refuse (the default): the message names the modality, the
               files, both sizes and this option
``'crop'``     centre-crop the larger modality to the RGB size, as
               TokenFusion / CEN's ``CropAlignToMask``: offsets
               ``(in - out) // 2``, an odd remainder removed at the bottom /
               right; no interpolation. A modality smaller than RGB on
               either side is an error.
``'stretch'``  the GeminiFusion release: no alignment; the modality is
               resized from ITS OWN size to the size the RGB image gets,
               in the same transform and with the same interpolation
               (torch bilinear, no antialiasing)
=============  ===============================================================

How ``'stretch'`` works without an extra interpolation step: the loader
puts the modality into ``img`` already stretched to the RGB size (torch
bilinear, like the release), so every transform sees a consistent image,
and keeps the modality at its own size in ``results[UNALIGNED_KEY]``
(:func:`stash_unaligned`). The first resize of this package
(:class:`ResizeShortSideToMultiple`, :class:`RandomRescaleCrop`) takes
it (:func:`take_unaligned`): it applies the flip that mmseg's
``RandomFlip`` recorded (``flip`` / ``flip_direction``; the release flips
every key before resizing), resizes the modality from its own size
straight to the target size(s) and overwrites those channels
(:func:`paste_unaligned`). A resize-free pipeline uses the copy stretched
at load.

Between the loader and that resize, these transforms keep the mechanism
exact: the annotation loaders, mmseg's ``RandomFlip`` (replayed),
transforms that change only the RGB channels (:class:`RGBColorJitter`,
:class:`RGBGaussianBlur`, the RGB corruptions), and the transforms that
change a modality's values, which first "settle" it
(:func:`settle_unaligned`: its side entry is dropped, so the stretched copy
in ``img`` becomes final and their change is kept): the depth corruptions,
:class:`RandomDepthDegradation` and :class:`RandomModalityDrop` (when it
drops depth). Anything else that changes the modality's channels (an mmseg
geometric transform such as ``Resize``, ``RandomCrop``, ``RandomRotate``, a
pad) is detected when the resize runs -- the channels no longer equal the
stretched copy (flipped as recorded) -- and the side entry is dropped with
a warning (once per process): the stretched-at-load copy, as transformed,
is used. ``PackSegInputs`` ignores the side key.
"""
import logging
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmengine.logging import print_log

from .interpolation import tensor_resize

__all__ = [
    'SIZE_MISMATCH_POLICIES', 'UNALIGNED_KEY', 'check_size_mismatch',
    'resolve_size_mismatch', 'centre_crop', 'match_rgb_size',
    'stash_unaligned', 'settle_unaligned', 'take_unaligned', 'paste_unaligned',
    'size_mismatch_hint'
]

#: The policies for a modality whose size differs from RGB.
SIZE_MISMATCH_POLICIES = ('stretch', 'crop', 'error')

#: Results key of the modalities kept at their own size ('stretch').
UNALIGNED_KEY = 'unaligned_modalities'

# (owner, modality, kind) already warned about, once per process
_WARNED = set()

Size = Tuple[int, int]


def check_size_mismatch(value: Optional[str],
                        owner: str,
                        allow_none: bool = False) -> Optional[str]:
    """Return ``value`` if it is a policy (or None when ``allow_none``),
    else raise a ValueError naming ``owner``."""
    if value is None and allow_none:
        return None
    if value not in SIZE_MISMATCH_POLICIES:
        raise ValueError(f'{owner}: size_mismatch must be one of '
                         f'{SIZE_MISMATCH_POLICIES}, got {value!r}.')
    return value


def resolve_size_mismatch(results: dict, explicit: Optional[str],
                          owner: str) -> str:
    """The policy of one sample: ``explicit`` (a loader's own setting) if
    given, else the sample's ``size_mismatch`` (its dataset's), else
    ``'error'``."""
    if explicit is not None:
        return explicit
    return check_size_mismatch(
        results.get('size_mismatch', 'error'), f'{owner} (the sample)')


def size_mismatch_hint(where: str = 'the dataset') -> str:
    """The part of an error message that names the option (set on
    ``where``)."""
    return (f"Set size_mismatch on {where}: 'stretch' resizes it onto "
            "the RGB image as the GeminiFusion release does, 'crop' "
            "centre-crops it to the RGB size as TokenFusion does (see "
            'docs/dataset_prepare.md).')


def centre_crop(x: np.ndarray, size: Size) -> np.ndarray:
    """Crop ``x`` (H, W, ...) to ``size`` (h, w) around its centre, as
    TokenFusion's ``CropAlignToMask``: ``(H - h) // 2`` rows off the top,
    the rest (one more for an odd difference) off the bottom; columns
    likewise. Needs ``H >= h`` and ``W >= w``."""
    in_h, in_w = x.shape[:2]
    h, w = size
    top, left = (in_h - h) // 2, (in_w - w) // 2
    return x[top:top + h, left:left + w]


def match_rgb_size(x: np.ndarray,
                   rgb_size: Size,
                   policy: str,
                   what: str,
                   source: str,
                   rgb_source: str,
                   hint: str = '') -> Tuple[np.ndarray, bool]:
    """Bring one encoded modality to the RGB size by ``policy``.

    Args:
        x (np.ndarray): (H, W, C) float32, the encoded modality.
        rgb_size (tuple[int, int]): (h, w) of the RGB image.
        policy (str): 'stretch', 'crop' or 'error'.
        what, source, rgb_source (str): Name the modality (e.g. 'Depth
            image'), its input (e.g. ' of depth/1.png') and the RGB
            input in the messages.
        hint (str): Appended to the 'error' message.

    Returns:
        tuple: The (h, w, C) array and whether it was stretched (then keep
        ``x`` with :func:`stash_unaligned`).

    Raises:
        ValueError: 'error', or 'crop' with a modality smaller than RGB.
    """
    size = tuple(x.shape[:2])
    rgb_size = tuple(rgb_size)
    if size == rgb_size:
        return x, False
    if policy == 'crop':
        if size[0] < rgb_size[0] or size[1] < rgb_size[1]:
            raise ValueError(
                f"size_mismatch='crop': {what} size {size} (H, W){source} is "
                f'smaller than the RGB image size {rgb_size}{rgb_source} on '
                "at least one side; a centre crop cannot align it (use "
                "'stretch' or register the modality to the RGB image).")
        return centre_crop(x, rgb_size), False
    if policy == 'stretch':
        return tensor_resize(x, rgb_size, 'bilinear'), True
    raise ValueError(f'{what} size {size} (H, W){source} differs from the RGB '
                     f'image size {rgb_size}{rgb_source}. ' +
                     size_mismatch_hint() + hint)


@dataclass
class _Unaligned:
    """One modality kept at its own size: channels of ``img`` it fills,
    the encoded array (h0, w0, C), the image shape at load and a copy of
    the stretched channels as loaded (to detect other transforms)."""
    name: str
    channels: Tuple[int, int]
    data: np.ndarray
    shape: Size
    stretched: np.ndarray


def stash_unaligned(results: dict, name: str, channels: Tuple[int, int],
                    data: np.ndarray) -> None:
    """Keep modality ``name`` at its own size for the first resize.

    Call it after ``results['img']`` holds the stretched copy in
    ``channels`` (start, stop).

    Args:
        results (dict): Gets ``results[UNALIGNED_KEY][name]``.
        name (str): The modality.
        channels (tuple[int, int]): Its channels in ``img``.
        data (np.ndarray): (h0, w0, C) float32 at its own size.
    """
    img = results['img']
    start, stop = channels
    results.setdefault(UNALIGNED_KEY,
                       {})[name] = _Unaligned(name, (start, stop), data,
                                              tuple(img.shape[:2]),
                                              img[..., start:stop].copy())


def settle_unaligned(results: dict,
                     channels: Optional[Tuple[int, int]] = None) -> None:
    """Make the stretched copy in ``img`` final for the modalities in
    ``channels`` (start, stop), or for all: their side entries are dropped.

    Call it in a transform that changes a modality's values before a
    resize (a corruption, a dropout), so that the change is kept.
    """
    entries = results.get(UNALIGNED_KEY)
    if not entries:
        return
    for name in list(entries):
        start, stop = entries[name].channels
        if channels is None or (start < channels[1] and channels[0] < stop):
            del entries[name]
    if not entries:
        del results[UNALIGNED_KEY]


def _warn_once(owner: str, name: str, kind: str, reason: str) -> None:
    """Warn about ``reason`` once per (owner, modality, kind): the
    sizes in ``reason`` vary from sample to sample."""
    if (owner, name, kind) in _WARNED:
        return
    _WARNED.add((owner, name, kind))
    print_log(
        f'{owner}: the modality {name!r} is stored at another size than '
        f'RGB (size_mismatch=\'stretch\'), but {reason} between its loader '
        f'and {owner}; its copy stretched to the RGB size at load is used '
        '(one more interpolation step than the GeminiFusion release). Put '
        'only the transforms listed in geminifusion_mmseg/datasets/'
        'transforms/size_mismatch.py between them. Not reported again.',
        logger='current',
        level=logging.WARNING)


def take_unaligned(results: dict, owner: str) -> List[_Unaligned]:
    """Pop the modalities kept at their own size, flipped as recorded.

    Call it in a resize BEFORE changing ``results['img']``. An entry whose
    channels in ``img`` are no longer the stretched copy of the loader
    (flipped by mmseg's ``RandomFlip`` as recorded in ``flip`` /
    ``flip_direction``) is dropped with a one-time warning.

    Returns:
        list: The valid entries, their ``data`` flipped like ``img``.
    """
    entries = results.pop(UNALIGNED_KEY, None)
    if not entries:
        return []
    img = results['img']
    direction = results.get('flip_direction') if results.get('flip') \
        else None
    valid = []
    for entry in entries.values():
        start, stop = entry.channels
        if tuple(img.shape[:2]) != entry.shape:
            _warn_once(
                owner, entry.name, 'size', f'the image size changed from '
                f'{entry.shape} to {tuple(img.shape[:2])}')
            continue
        stretched = entry.stretched
        data = entry.data
        if direction is not None:
            stretched = mmcv.imflip(stretched, direction)
            data = mmcv.imflip(data, direction)
        if not np.array_equal(img[..., start:stop], stretched):
            _warn_once(owner, entry.name, 'channels',
                       'a transform changed its channels')
            continue
        valid.append(
            _Unaligned(entry.name, entry.channels, np.ascontiguousarray(data),
                       entry.shape, stretched))
    return valid


def paste_unaligned(
        img: np.ndarray, entries: Sequence[_Unaligned], sizes: Sequence[Size],
        resize: Callable[[np.ndarray, Size], np.ndarray]) -> np.ndarray:
    """Overwrite the channels of ``entries`` in the resized ``img`` with
    each modality resized from its own size through ``sizes``.

    Args:
        img (np.ndarray): (H, W, C), resized through ``sizes`` already.
        entries: From :func:`take_unaligned`.
        sizes (Sequence[tuple[int, int]]): The (h, w) of each resize step,
            as applied to ``img`` (the release's ``Resize`` has two).
        resize (callable): ``(array, (h, w)) -> array``, the transform's
            image resize (same interpolation, same rounding).

    Returns:
        np.ndarray: ``img`` (written in place when it is writable).
    """
    if not entries:
        return img
    if not img.flags.writeable:
        img = img.copy()
    for entry in entries:
        data = entry.data
        for size in sizes:
            data = resize(data, tuple(size))
        start, stop = entry.channels
        img[..., start:stop] = data
    return img

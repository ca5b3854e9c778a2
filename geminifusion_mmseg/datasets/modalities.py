"""Modality names, their normalisation, and the channel-count check.

A multi-modal sample is ONE float image with 3 channels per modality,
stacked in the order of the config's ``modalities`` (RGB first): channels
``3*i .. 3*i+2`` hold modality ``i``. The data preprocessor normalises it
per channel, so its ``mean`` / ``std`` need 3 entries per modality and the
backbone ``in_channels = 3 * len(modalities)``.
"""
from typing import Dict, List, Sequence, Tuple

#: Modality names the datasets and loaders know (RGB is always first).
#: ``'depth'`` is a depth map or a 3-channel encoding (HHA), ``'event'``
#: event frames, ``'lidar'`` LiDAR range images, ``'thermal'`` thermal
#: images; any other name is allowed in :class:`LoadMultiModalImageFromFile`
#: with an explicit path in the sample.
KNOWN_MODALITIES = ('rgb', 'depth', 'hha', 'event', 'lidar', 'thermal')
#: The modalities of an RGB-D sample, in channel order (the RGB-D loaders
#: and datasets are the K-modality ones for these).
RGBD_MODALITIES = ('rgb', 'depth')

#: ImageNet mean / std on 0..255, the normalisation of RGB.
RGB_MEAN = (123.675, 116.28, 103.53)
RGB_STD = (58.395, 57.12, 57.375)
#: The other modalities are divided by 255 (mean 0, std 255), as published.
OTHER_MEAN = (0., 0., 0.)
OTHER_STD = (255., 255., 255.)


def check_modality_names(modalities: Sequence[str],
                         where: str = 'modalities') -> Tuple[str, ...]:
    """Validate a modality list: non-empty, unique names, ``'rgb'`` first.

    Args:
        modalities (Sequence[str]): E.g. ``('rgb', 'depth', 'event')``.
        where (str): Names the caller in the error message.

    Returns:
        tuple[str]: The names as a tuple.

    Raises:
        ValueError: An empty list, a duplicate, a name that is not a
            string, or RGB not first.
    """
    if isinstance(modalities, str):
        raise ValueError(
            f'{where}: modalities must be a list of names such as '
            f"['rgb', 'depth'], got the string {modalities!r}.")
    names = tuple(modalities)
    if not names:
        raise ValueError(f'{where}: modalities is empty; need at least '
                         "['rgb'].")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f'{where}: modality names must be non-empty '
                             f'strings, got {name!r} in {list(names)}.')
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f'{where}: modality {dup[0]!r} is listed more than '
                         f'once in {list(names)}.')
    if names[0] != 'rgb':
        raise ValueError(
            f"{where}: the first modality must be 'rgb' (RGB fills channels "
            f'0-2, the photometric transforms touch only those), got '
            f'{list(names)}.')
    return names


def modality_mean_std(
        modalities: Sequence[str]) -> Tuple[List[float], List[float]]:
    """Per-channel mean / std of the data preprocessor for ``modalities``.

    RGB: ImageNet mean / std on 0..255; every other modality: mean 0, std
    255 (i.e. divided by 255), as the GeminiFusion / CMNeXt DeLiVER and
    MFNet code normalises them.

    Example::

        >>> mean, std = modality_mean_std(['rgb', 'depth', 'event', 'lidar'])
        >>> len(mean), mean[:4], std[3:6]
        (12, [123.675, 116.28, 103.53, 0.0], [255.0, 255.0, 255.0])

    Returns:
        tuple[list[float], list[float]]: ``3 * len(modalities)`` entries
        each.
    """
    names = check_modality_names(modalities, 'modality_mean_std')
    mean: List[float] = []
    std: List[float] = []
    for name in names:
        mean.extend(RGB_MEAN if name == 'rgb' else OTHER_MEAN)
        std.extend(RGB_STD if name == 'rgb' else OTHER_STD)
    return mean, std


def modality_norm_cfg(modalities: Sequence[str]) -> Dict[str, List[float]]:
    """``dict(mean=..., std=...)`` of :func:`modality_mean_std`, to update
    a data preprocessor config: ``data_preprocessor.update(
    modality_norm_cfg(modalities))``."""
    mean, std = modality_mean_std(modalities)
    return dict(mean=mean, std=std)


def check_modalities_match(num_channels: int,
                           modalities: Sequence[str],
                           where: str = 'model') -> None:
    """Raise if ``num_channels`` is not 3 per modality.

    Call it where a channel count meets a modality list: the backbone's
    ``in_channels``, the data preprocessor's ``len(mean)`` / ``len(std)``,
    the channels of a loaded image.

    Args:
        num_channels (int): The channel count to check.
        modalities (Sequence[str]): The config's modality list.
        where (str): What ``num_channels`` belongs to, for the message
            (e.g. ``'backbone in_channels'``,
            ``'data_preprocessor mean'``).

    Raises:
        ValueError: ``num_channels != 3 * len(modalities)``; the message
            names both numbers and the modalities.
    """
    names = tuple(modalities)
    expected = 3 * len(names)
    if int(num_channels) != expected:
        raise ValueError(
            f'{where} has {num_channels} channels, but the modalities '
            f'{list(names)} need {expected} (3 per modality). Make the '
            "config's modalities, the backbone's in_channels and the data "
            "preprocessor's mean/std agree (see "
            'geminifusion_mmseg.datasets.modality_mean_std).')

"""What a modality list fixes of the model: channels, inputs, stream names.

A config may declare its modalities once (``model.modalities``,
``MultiBranchIoUMetric(modalities=...)``) and let these functions derive
the rest:

* the backbone's ``in_channels`` (3 per modality) and ``num_modalities``
  (K, the input modalities);
* the names of the backbone's output streams, one segmentor branch each:
  ``('rgb', <the other modality>)`` for K = 2, ``('rgb', 'fused')`` for
  K > 2 (the blocks fuse RGB with the token selection of the other K - 1;
  docs/model.md "K modalities").

A value given beside the modalities must agree with what they derive;
a disagreement is a ValueError naming the key and both values.
"""
from typing import Optional, Sequence, Tuple

from ...datasets.modalities import check_modality_names

#: Stream names without a modality list (the RGB-D model).
DEFAULT_STREAM_NAMES = ('rgb', 'depth')
#: The name of the second stream when K > 2 modalities are fused into it.
FUSED_STREAM = 'fused'


def stream_names(modalities: Sequence[str],
                 where: str = 'modalities') -> Tuple[str, ...]:
    """The backbone's output stream names for ``modalities``.

    Args:
        modalities (Sequence[str]): K >= 2 modality names, RGB first, e.g.
            ``('rgb', 'event')`` or ``('rgb', 'depth', 'event', 'lidar')``.
        where (str): Names the caller in error messages.

    Returns:
        tuple[str, str]: ``('rgb', modalities[1])`` for K = 2,
        ``('rgb', 'fused')`` for K > 2.

    Raises:
        ValueError: A bad modality list (see
            :func:`~geminifusion_mmseg.datasets.check_modality_names`), or
            RGB alone (GeminiFusion fuses RGB with at least one other
            modality).
    """
    names = check_modality_names(modalities, where)
    if len(names) < 2:
        raise ValueError(f'{where}: GeminiFusion fuses RGB with at least one '
                         f'other modality, got modalities={list(names)}')
    return names if len(names) == 2 else (names[0], FUSED_STREAM)


def resolve_stream_names(names: Optional[Sequence[str]],
                         modalities: Optional[Sequence[str]],
                         where: str,
                         key: str = 'modality_names') -> Tuple[str, ...]:
    """Stream (branch) names from explicit ``names`` and/or ``modalities``.

    Args:
        names (Sequence[str], optional): Names given explicitly under
            ``key``.
        modalities (Sequence[str], optional): The modality list.
        where (str): The owner (e.g. ``'MultiBranchIoUMetric'``), for
            messages.
        key (str): The argument ``names`` was given as (``'modality_names'``,
            ``'branches'``), for messages.

    Returns:
        tuple[str]: ``names``; with only ``modalities``,
        :func:`stream_names` of them; with neither,
        :data:`DEFAULT_STREAM_NAMES`.

    Raises:
        ValueError: Both are given and ``names`` differs from what the
            modalities derive.
    """
    if modalities is None:
        return DEFAULT_STREAM_NAMES if names is None else tuple(names)
    derived = stream_names(modalities, f'{where}: modalities')
    if names is not None and tuple(names) != derived:
        raise ValueError(
            f'{where}: {key}={tuple(names)} disagrees with modalities='
            f'{list(modalities)}, which give the stream names {derived} '
            f"(('rgb', <other>) for 2 modalities, ('rgb', "
            f"'{FUSED_STREAM}') for more). Drop {key} (it follows the "
            'modalities) or make the two agree.')
    return derived


def resolve_backbone_cfg(backbone: dict,
                         modalities: Optional[Sequence[str]],
                         where: str,
                         prefix: str = 'backbone') -> dict:
    """The backbone config with ``in_channels`` / ``num_modalities`` set.

    Args:
        backbone (dict): The backbone config. ``in_channels`` and
            ``num_modalities`` may be missing or None (derived; without
            ``modalities``: the backbone's own defaults).
        modalities (Sequence[str], optional): The modality list; None:
            only the None entries are dropped.
        where (str): The owner, for messages.
        prefix (str): The config key of ``backbone``, for messages.

    Returns:
        dict: A new dict; ``backbone`` is not changed.

    Raises:
        ValueError: ``in_channels`` or ``num_modalities`` is given and
            differs from ``3 * K`` or ``K`` of the K ``modalities``.
    """
    out = dict(backbone)
    for key in ('in_channels', 'num_modalities'):
        if key in out and out[key] is None:
            del out[key]
    if modalities is None:
        return out
    names = check_modality_names(modalities, f'{where}: modalities')
    derived = dict(in_channels=3 * len(names), num_modalities=len(names))
    for key, value in derived.items():
        given = out.setdefault(key, value)
        if given != value:
            raise ValueError(
                f'{where}: {prefix}.{key}={given!r} disagrees with '
                f'modalities={list(names)}, which give {key}={value} (3 '
                f'channels per modality). Drop {prefix}.{key} (it follows '
                'the modalities) or make the two agree.')
    return out

"""Key maps between a GeminiFusion backbone's parameter names and the
checkpoints it is initialised from, written once for both families.

Each backbone family subclasses :class:`BackboneKeyMap` beside its model
(``gemini_mit_keys.py``, ``gemini_swin_keys.py``) and attaches it to the
backbone class as ``key_map``; the loaders in
:mod:`geminifusion_mmseg.checkpoints` call it through the backbone, so they
never branch on the backbone class. Three name spaces meet here:

* **released**: the published GeminiFusion checkpoints, encoder part
  (``module.`` already stripped), e.g. MiT
  ``encoder.block1.0.attn.q.module.weight``;
* **ours**: this plugin's backbone state dict (version ``VERSION``);
* **canonical ImageNet**: the unimodal pretrained layout every ImageNet
  format is first brought to (NVlabs ``mit_b*.pth`` for MiT, Microsoft
  ``swin_*.pth`` for Swin); our per-modality norms ``.ln_{i}`` map to the
  one unimodal norm, fusion parameters have no counterpart.

All functions are pure (names and tensors in, names and tensors out).
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

__all__ = [
    'BackboneKeyMap', 'FUSION_PARAM_NAMES', 'MODALITY_NORM_RE',
    'UNIMODAL_IGNORED_RE', 'ReleasedLayoutError', 'released_shape',
    'released_block_depths'
]

#: Names of the GeminiFusion layer's parameters in the release, which sit
#: directly on the attention (MiT) or the block (Swin) there, and under
#: ``fusion.`` here.
FUSION_PARAM_NAMES = ('cross_attn_0_to_1', 'cross_attn_1_to_0',
                      'relation_judger', 'k_noise', 'v_noise')
#: A per-modality norm's parameter: ``....ln_{i}.weight``.
MODALITY_NORM_RE = re.compile(r'\.ln_\d+\.')
#: Keys of unimodal ImageNet checkpoints that have no counterpart here and
#: are dropped with a note: classifier heads, Swin's shift masks and
#: relative position indices (ours are computed).
UNIMODAL_IGNORED_RE = re.compile(
    r'(^head\.|(^|\.)attn_mask$|(^|\.)relative_position_index$)')

StateDict = 'OrderedDict[str, Tensor]'


class ReleasedLayoutError(ValueError):
    """A released state dict that does not fit a backbone family. The
    message does not name the file: the checkpoint loader adds it."""


def released_shape(sd: Dict[str, Tensor], key: str) -> Tuple[int, ...]:
    """Shape of ``sd[key]`` in a released state dict (``module.``
    stripped); a missing key or a non-tensor raises
    :class:`ReleasedLayoutError` naming it."""
    if key not in sd:
        raise ReleasedLayoutError(
            f'expected key {key!r} is missing; not a complete released '
            'GeminiFusion state dict')
    value = sd[key]
    if not isinstance(value, Tensor):
        raise ReleasedLayoutError(
            f'{key!r} holds a {type(value).__name__}, not a tensor')
    return tuple(value.shape)


def released_block_depths(keys: Sequence[str], pattern: str,
                          stages: Sequence[int]) -> Tuple[int, ...]:
    """Blocks per stage from the keys matching ``pattern`` (groups: stage
    id, block index), for the stage ids ``stages``; each stage must have
    blocks ``0..n-1``."""
    regex = re.compile(pattern)
    found: Dict[int, set] = {s: set() for s in stages}
    for k in keys:
        m = regex.match(k)
        if m:
            stage, block = int(m.group(1)), int(m.group(2))
            if stage not in found:
                raise ReleasedLayoutError(
                    f'key {k!r} names stage {stage}, but GeminiFusion '
                    f'backbones have stages {list(stages)}')
            found[stage].add(block)
    depths = []
    for s in stages:
        blocks = found[s]
        if not blocks or blocks != set(range(len(blocks))):
            raise ReleasedLayoutError(
                f'stage {s} has blocks {sorted(blocks)}; expected 0..n-1')
        depths.append(len(blocks))
    return tuple(depths)


class BackboneKeyMap:
    """Key maps of one backbone family (class-level, stateless).

    Subclasses set:

    Attributes:
        family (str): 'mit' or 'swin'.
        released_prefix (str): Prefix of the backbone's keys in a released
            state dict (after ``module.``).
        fusion_parent (str): Regex (one group) of the module that holds the
            fusion parameters, in OUR layout.
        imagenet_formats (dict): format name -> ``((marker key, block
            prefix), to_canonical(sd) -> (sd, unknown keys) or None for
            identity)``; a state dict is of that format when it has the
            marker key and a key starting with the block prefix.
        version (int): Layout version of our keys (the backbone's
            ``_version``).
    """
    family: str = ''
    released_prefix: str = ''
    fusion_parent: str = ''
    imagenet_formats: Dict[str, Tuple[Tuple[str, str],
                                      Optional[Callable]]] = {}
    version: int = 1

    # --------------------------------------------------------- layouts
    @classmethod
    def release_layout_to_ours(cls, key: str) -> str:
        """Module path of the release (and of our version-1 keys) -> ours.
        Identity unless the family moved modules."""
        return key

    @classmethod
    def ours_to_release_layout(cls, key: str) -> str:
        """Inverse of :meth:`release_layout_to_ours`."""
        return key

    @classmethod
    def upgrade_key(cls, key: str, version: Optional[int]) -> str:
        """One of our keys written by an earlier version (``version``; None:
        unknown, treated as 1) -> the current layout."""
        if version is None or version < cls.version:
            return cls.release_layout_to_ours(key)
        return key

    @classmethod
    def upgrade_state_dict(cls,
                           state_dict: Dict[str, Tensor],
                           version: Optional[int] = None) -> StateDict:
        """:meth:`upgrade_key` on every key (order kept)."""
        return OrderedDict(
            (cls.upgrade_key(k, version), v) for k, v in state_dict.items())

    # --------------------------------------------------------- released
    @classmethod
    def released_to_ours(cls, key: str) -> str:
        """A released backbone key (``released_prefix`` stripped) -> ours:
        every ``.module`` wrapper dropped, the module path moved
        (:meth:`release_layout_to_ours`), the fusion parameters grouped
        under ``fusion.``.

        e.g. MiT ``block1.0.attn.k_noise.weight`` ->
        ``layers.0.blocks.0.attn.fusion.k_noise.weight``.
        """
        key = cls.release_layout_to_ours(key.replace('.module.', '.'))
        return re.sub(
            '^(' + cls.fusion_parent + r'\.)(' + '|'.join(FUSION_PARAM_NAMES) +
            r')\.', r'\1fusion.\2.', key)

    @classmethod
    def ours_to_released_name(cls, key: str) -> str:
        """Our key -> its released name without the ``.module`` wrappers
        (for messages)."""
        key = re.sub('^(' + cls.fusion_parent + r'\.)fusion\.', r'\1', key)
        return cls.released_prefix + cls.ours_to_release_layout(key)

    # --------------------------------------------------------- ImageNet
    @classmethod
    def detect_released(cls,
                        sd: Dict[str, Tensor],
                        allow_custom: bool = False) -> dict:
        """The variant of a released backbone from its key names and
        shapes (``sd``: the released state dict, ``module.`` stripped).

        Returns a dict with ``family``, ``backbone_type``, ``arch`` (a
        variant name, or a dict for a custom size when ``allow_custom``),
        ``name`` (the config-file tag or None), ``embed_dims`` and
        ``depths`` (per stage), and the family's own settings. Raises
        :class:`ReleasedLayoutError` for an unknown size."""
        raise NotImplementedError

    @classmethod
    def detect_imagenet_format(cls, keys) -> Optional[str]:
        """The ImageNet format of a state dict with these keys, or None."""
        keys = set(keys)
        for name, ((marker, prefix), _) in cls.imagenet_formats.items():
            if marker in keys and any(k.startswith(prefix) for k in keys):
                return name
        return None

    @classmethod
    def imagenet_to_canonical(cls, state_dict: Dict[str, Tensor],
                              fmt: str) -> Tuple[StateDict, List[str]]:
        """A state dict of ImageNet format ``fmt`` -> canonical names.

        Returns:
            tuple: (state dict, keys it could not map).
        """
        convert = cls.imagenet_formats[fmt][1]
        if convert is None:
            return OrderedDict(state_dict), []
        return convert(state_dict)

    @classmethod
    def ours_to_canonical(cls, key: str) -> Optional[str]:
        """Our key -> its canonical ImageNet key; None for keys that have
        no unimodal counterpart (fusion parameters, buffers we compute)."""
        if '.fusion.' in key or key.endswith('relative_position_index'):
            return None
        return cls.ours_to_release_layout(MODALITY_NORM_RE.sub('.', key))

    @classmethod
    def fresh_when_missing(cls, canonical_key: str, fmt: str) -> bool:
        """Whether a canonical key that a ``fmt`` file lacks is new in the
        segmentation backbone (left at its init) rather than missing."""
        return False

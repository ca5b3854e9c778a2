"""Released GeminiFusion checkpoints (``*.pth.tar``) -> this plugin.

The published training code saves ``{'segmenter': state_dict,
'epoch_start': int, 'best_val': numpy.float64}``; the state dict comes from
DistributedDataParallel, so every key starts with ``module.``
(docs/model.md). This module recognises which model such a file holds and
maps its keys to a
:class:`~geminifusion_mmseg.models.segmentors.MultiModalEncoderDecoder`::

    released (after ``module.``)            -> ours
    alpha                                   -> alpha
    encoder.<MiT key>                       -> backbone.<MiT key>
    encoder.body.<Swin key>                 -> backbone.<Swin key>
        through the backbone family's key map
        (:meth:`MiTKeyMap.released_to_ours`,
        :meth:`SwinKeyMap.released_to_ours`): every ``.module`` wrapper
        dropped (``proj.module.weight`` -> ``proj.weight``), the fusion
        parameters grouped under ``fusion.`` (cross_attn_0_to_1,
        cross_attn_1_to_0, relation_judger, k_noise, v_noise), and MiT's
        flat ``block{s}.{j}`` / ``patch_embed{s}`` / ``norm{s}`` moved into
        the stage list ``layers.{s-1}``
    decoder.linear_c{i}.proj.*              -> decode_head.linear_c{i}.proj.*
    decoder.linear_fuse.conv.* / .bn.*      -> decode_head.linear_fuse.conv.*
                                               / .bn.*
    decoder.linear_pred.*                   -> decode_head.conv_seg.*
    *score_predictor.*                      -> dropped (TokenFusion leftover)

The DeLiVER code line (branch ``DeLiVER``, docs/model.md "K modalities")
saves ``model.module.state_dict()`` bare: no ``segmenter`` entry, no
``module.`` prefix, ``backbone.`` / ``decode_head.`` instead of
``encoder.`` / ``decoder.`` (the same MiT names otherwise), K patch-embed
norms ``ln_0..ln_{K-1}`` and, for K > 2, the token selection::

    backbone.<MiT key>                      -> as encoder.<MiT key> above
    backbone.extra_score_predictor.{s}.*    -> backbone.layers.{s}.
                                               token_select.*
    decode_head.<key>                       -> as decoder.<key> above

Such a file is recognised by its keys (``backbone.patch_embed1.proj.module.
weight``); K is the number of patch-embed norms; 25 classes are DeLiVER, 9
MFNet.

Everything here is a pure function of the state dict except
:func:`load_released_checkpoint` / :func:`convert_released_checkpoint`
(which read the file with ``weights_only=True``) and
:func:`check_converted_state_dict` (which builds the matching backbone and
head on the ``meta`` device, so no memory is allocated, to compare key sets
and shapes).
"""
import glob
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import Tensor

from ..datasets import (DELIVER_CLASSES, DELIVER_PALETTE, MFNET_CLASSES,
                        MFNET_PALETTE, NYUDV2_CLASSES, NYUDV2_PALETTE)
from ..models.backbones import (GeminiFusionMiT, GeminiFusionSwin, MiTKeyMap,
                                SwinKeyMap)
from ..models.backbones.gemini_mit_keys import (MIT_DEFAULT_MLP_RATIO,
                                                MIT_DEFAULT_SR)
from ..models.backbones.gemini_swin import WindowMSA
from ..models.backbones.key_maps import (FUSION_PARAM_NAMES,
                                         ReleasedLayoutError, released_shape)
from ..utils.atomic_io import atomic_output, check_output_path
from .io import CheckpointFormatError, read_checkpoint, strip_prefix

__all__ = [
    'ReleasedCheckpointError', 'ReleasedModelInfo', 'FUSION_PARAM_NAMES',
    'strip_ddp_prefix', 'released_key_to_ours', 'detect_released_model',
    'convert_released_state_dict', 'model_config_fragment',
    'check_converted_state_dict', 'load_released_checkpoint',
    'convert_released_checkpoint', 'find_matching_configs',
    'find_released_state_dict', 'is_deliver_state_dict'
]

#: Backbone key maps by their prefix in a released state dict, the most
#: specific first.
_BACKBONE_KEY_MAPS = (SwinKeyMap, MiTKeyMap)
#: Their backbone classes (key map and table of variants), in that order.
_BACKBONES = (GeminiFusionSwin, GeminiFusionMiT)
_SCORE_PREDICTOR_RE = re.compile(r'(^|\.)score_predictor\.')
_DECODER_RE = re.compile(
    r'^decoder\.(linear_c[1-4]\.proj|linear_fuse\.conv|linear_fuse\.bn)\.'
    r'(.+)$')

_DATASETS_BY_CLASSES = {40: 'nyudv2', 37: 'sunrgbd', 25: 'deliver', 9: 'mfnet'}
#: Config-name tag of each dataset (``geminifusion_*_<tag>...py``).
_DATASET_TAGS = {
    'nyudv2': 'nyu',
    'sunrgbd': 'sun',
    'deliver': 'deliver',
    'mfnet': 'mfnet'
}
#: A DeLiVER-branch state dict (bare, ``backbone.`` / ``decode_head.``).
_DELIVER_MARK = 'backbone.patch_embed1.proj.module.weight'
_DELIVER_PREFIXES = (('backbone.', 'encoder.'), ('decode_head.', 'decoder.'))
_TOKEN_SELECT_RE = re.compile(r'^encoder\.extra_score_predictor\.(\d+)\.')


class ReleasedCheckpointError(CheckpointFormatError):
    """A file or state dict is not a released GeminiFusion checkpoint that
    this converter can map (the message names the file and the key)."""


@dataclass
class ReleasedModelInfo:
    """What a released checkpoint holds.

    Attributes:
        family (str): 'mit' or 'swin'.
        backbone_type (str): 'GeminiFusionMiT' or 'GeminiFusionSwin'.
        arch (str | dict): Our ``arch`` argument: 'b0'..'b5', 'tiny',
            'small', 'large', 'large-384', or a dict for a custom size.
        name (str | None): Config-file name of the variant ('mit-b3',
            'swin-l-384', ...); None for a custom size.
        embed_dims (tuple[int]): Channels of the 4 stages.
        depths (tuple[int]): Blocks per stage.
        num_heads (tuple[int] | None): Window-attention heads (Swin).
        window_size (int | None): Swin window size.
        sr_ratios (tuple[int] | None): MiT spatial-reduction ratios.
        mlp_ratio (int): MLP expansion.
        num_classes (int): Classes of ``linear_pred``.
        channels (int): Decoder embedding width (256 in the release).
        dropped_keys (list[str]): Released keys left out (score
            predictors).
        num_modalities (int): K input modalities (the number of
            patch-embedding norms). 2 except in the DeLiVER code line.
        layout (str): 'release' (the NYUDv2/SUN RGB-D ``.pth.tar``) or
            'deliver' (a bare state dict of the DeLiVER branch).
        released_names (dict): Our key -> released key, filled by
            :func:`convert_released_state_dict` (for messages).
    """
    family: str
    backbone_type: str
    arch: Union[str, dict]
    name: Optional[str]
    embed_dims: Tuple[int, ...]
    depths: Tuple[int, ...]
    num_classes: int
    channels: int
    num_heads: Optional[Tuple[int, ...]] = None
    window_size: Optional[int] = None
    sr_ratios: Optional[Tuple[int, ...]] = None
    mlp_ratio: int = 4
    dropped_keys: List[str] = field(default_factory=list)
    num_modalities: int = 2
    layout: str = 'release'
    released_names: Dict[str, str] = field(
        default_factory=dict, repr=False, compare=False)

    @property
    def dataset(self) -> Optional[str]:
        """'nyudv2' (40 classes) / 'sunrgbd' (37) / 'deliver' (25) /
        'mfnet' (9), else None."""
        return _DATASETS_BY_CLASSES.get(self.num_classes)

    def describe(self) -> str:
        arch = self.name or f'custom {self.arch}'
        what = (f'{self.backbone_type} ({arch}), num_classes='
                f'{self.num_classes}, decoder channels={self.channels}')
        if self.layout == 'deliver':
            what += (f', {self.num_modalities} modalities (DeLiVER code '
                     'line)')
        return what


def _err(source: str, msg: str) -> ReleasedCheckpointError:
    return ReleasedCheckpointError(f'{source}: {msg}')


def strip_ddp_prefix(state_dict: Dict[str, Tensor],
                     source: str = '<state dict>') -> Dict[str, Tensor]:
    """Drop the ``module.`` prefix that DistributedDataParallel added.

    Keys without it are accepted as they are; a mix is refused.
    """
    try:
        return strip_prefix(state_dict, 'module.', 'raise', source)
    except ReleasedCheckpointError:
        raise
    except CheckpointFormatError as e:
        raise ReleasedCheckpointError(
            f'{e}; not a released GeminiFusion state dict') from None


def is_deliver_state_dict(state_dict) -> bool:
    """Whether a dict is a bare state dict of the DeLiVER branch (keys
    ``backbone.patch_embed1.proj.module.weight``, ``decode_head.*``)."""
    return isinstance(state_dict, dict) and _DELIVER_MARK in state_dict


def _to_release_names(
        state_dict: Dict[str, Tensor],
        source: str) -> Tuple[Dict[str, Tensor], Dict[str, str], str]:
    """Both layouts under the release's names (``module.`` stripped).

    Returns:
        tuple: (state dict with ``encoder.`` / ``decoder.`` / ``alpha``
        keys, release-style key -> key as in the file, layout 'release' or
        'deliver').
    """
    sd = strip_ddp_prefix(state_dict, source)
    if not is_deliver_state_dict(sd):
        return sd, {k: 'module.' + k for k in sd}, 'release'
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    names: Dict[str, str] = {}
    for key, value in sd.items():
        new = key
        for theirs, release in _DELIVER_PREFIXES:
            if key.startswith(theirs):
                new = release + key[len(theirs):]
        out[new] = value
        names[new] = key
    return out, names, 'deliver'


def released_key_to_ours(key: str) -> Optional[str]:
    """Map one released key (``module.`` already stripped) to ours.

    Returns:
        str | None: Our key, or None for a key to drop (score predictors).

    Raises:
        KeyError: the key belongs to no known part of the release.
    """
    if _SCORE_PREDICTOR_RE.search(key):
        return None
    if key == 'alpha':
        return 'alpha'
    m = _TOKEN_SELECT_RE.match(key)
    if m:  # the DeLiVER branch's token selection
        return f'backbone.layers.{m.group(1)}.token_select.' + key[m.end():]
    for key_map in _BACKBONE_KEY_MAPS:
        if key.startswith(key_map.released_prefix):
            return 'backbone.' + key_map.released_to_ours(
                key[len(key_map.released_prefix):])
    if key.startswith('decoder.linear_pred.'):
        return 'decode_head.conv_seg.' + key[len('decoder.linear_pred.'):]
    m = _DECODER_RE.match(key)
    if m:
        return f'decode_head.{m.group(1)}.{m.group(2)}'
    raise KeyError(key)


def _shape(sd: Dict[str, Tensor], key: str, source: str) -> Tuple[int, ...]:
    try:
        return released_shape(sd, key)
    except ReleasedLayoutError as e:
        raise _err(source, str(e)) from None


def _detect_backbone(sd: Dict[str, Tensor], source: str,
                     allow_custom: bool) -> dict:
    """The backbone of a released state dict, recognised by the key map of
    the family whose prefix its keys carry (the most specific first)."""
    for backbone in _BACKBONES:
        key_map = backbone.key_map
        if any(k.startswith(key_map.released_prefix) for k in sd):
            try:
                return key_map.detect_released(sd, backbone.arch_zoo,
                                               allow_custom)
            except ReleasedLayoutError as e:
                raise _err(source, str(e)) from None
    raise _err(
        source, 'no GeminiFusion encoder found (expected keys '
        '"module.encoder.patch_embed1..." (MiT) or '
        '"module.encoder.body.patch_embed..." (Swin)); first keys: '
        f'{list(sd)[:5]}')


def _detect_decoder(sd, source) -> Tuple[List[int], int, int]:
    in_channels = []
    channels = None
    for i in range(1, 5):
        out_c, in_c = _shape(sd, f'decoder.linear_c{i}.proj.weight', source)
        if channels is not None and out_c != channels:
            raise _err(
                source, f'decoder.linear_c{i}.proj.weight has {out_c} '
                f'outputs, linear_c1 has {channels}')
        channels = out_c
        in_channels.append(in_c)
    pred = _shape(sd, 'decoder.linear_pred.weight', source)
    if len(pred) != 4 or pred[1] != channels:
        raise _err(
            source, f'decoder.linear_pred.weight has shape {pred}, '
            f'expected (num_classes, {channels}, 1, 1)')
    return in_channels, channels, pred[0]


def detect_released_model(
        state_dict: Dict[str, Tensor],
        source: str = '<state dict>',
        allow_custom_arch: bool = False) -> ReleasedModelInfo:
    """Recognise the model of a released ``segmenter`` state dict.

    MiT-B0..B5 from the stage widths (``patch_embed{s}.proj``) and the block
    counts; Swin tiny/small/large/large-384 from the width, block counts,
    heads and window size (``relative_position_bias_table`` has
    ``(2 * window - 1)**2`` rows); the classes from ``linear_pred``.

    Args:
        state_dict (dict): The ``segmenter`` entry, with or without the
            ``module.`` prefix.
        source (str): Name used in error messages (the file).
        allow_custom_arch (bool): Accept sizes that are not a released
            variant (returned as an ``arch`` dict). Defaults to False.

    Raises:
        ReleasedCheckpointError: not a GeminiFusion MiT/Swin segmenter, or
            an unknown size.
    """
    sd, _, layout = _to_release_names(state_dict, source)
    if layout == 'deliver' and any(k.startswith('encoder.body.') for k in sd):
        raise _err(
            source, 'a Swin backbone in a DeLiVER-branch state dict: '
            'that code line has MiT backbones only')
    found = _detect_backbone(sd, source, allow_custom_arch)
    in_channels, channels, num_classes = _detect_decoder(sd, source)
    if tuple(in_channels) != tuple(found['embed_dims']):
        raise _err(
            source, f'decoder inputs {tuple(in_channels)} do not '
            f'match the encoder widths {found["embed_dims"]}')
    dropped = [k for k in state_dict if _SCORE_PREDICTOR_RE.search(k)]
    num_modalities = _detect_num_modalities(sd, found['family'], source)
    if layout == 'release' and num_modalities != 2:
        raise _err(
            source, f'{num_modalities} patch-embedding norms; the '
            'released NYUDv2/SUN RGB-D models have 2')
    return ReleasedModelInfo(
        num_classes=num_classes,
        channels=channels,
        dropped_keys=dropped,
        num_modalities=num_modalities,
        layout=layout,
        **found)


def _detect_num_modalities(sd: Dict[str, Tensor], family: str,
                           source: str) -> int:
    """K: the first stage's patch-embedding norms ``ln_0..ln_{K-1}``; for
    K > 2 each stage must have its K score nets."""
    if family != 'mit':
        return 2
    norm = re.compile(r'^encoder\.patch_embed1\.norm\.ln_(\d+)\.weight$')
    ids = sorted(int(m.group(1)) for m in map(norm.match, sd) if m)
    if len(ids) < 2 or ids != list(range(len(ids))):
        raise _err(
            source, f'patch_embed1 has the modality norms {ids}; '
            'expected ln_0..ln_{K-1} with K >= 2')
    k = len(ids)
    for s in range(4 if k > 2 else 0):
        for i in range(k):
            key = f'encoder.extra_score_predictor.{s}.score_nets.{i}.0.weight'
            if key not in sd:
                raise _err(
                    source, f'{k} modalities but '
                    f'{key.replace("encoder.", "backbone.", 1)!r} '
                    'is missing (K > 2 needs K score nets per stage)')
    return k


def model_config_fragment(info: ReleasedModelInfo) -> dict:
    """The part of a model config that the checkpoint fixes.

    Returns:
        dict: ``dict(backbone=dict(type, arch, ...), decode_head=dict(type,
        in_channels, channels, num_classes))``, to merge into a
        ``MultiModalEncoderDecoder`` config (e.g. one of
        ``configs/geminifusion``).
    """
    backbone = dict(type=info.backbone_type, arch=_plain(info.arch))
    if info.family == 'mit':
        if tuple(info.sr_ratios) != MIT_DEFAULT_SR:
            backbone['sr_ratios'] = list(info.sr_ratios)
        if info.mlp_ratio != MIT_DEFAULT_MLP_RATIO:
            backbone['mlp_ratio'] = info.mlp_ratio
        if info.num_modalities != 2:
            backbone['in_channels'] = 3 * info.num_modalities
            backbone['num_modalities'] = info.num_modalities
    decode_head = dict(
        type='SegFormerMLPHead',
        in_channels=list(info.embed_dims),
        channels=info.channels,
        num_classes=info.num_classes)
    return dict(backbone=backbone, decode_head=decode_head)


def _plain(arch):
    if isinstance(arch, dict):
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in arch.items()
        }
    return arch


def convert_released_state_dict(
    state_dict: Dict[str, Tensor],
    source: str = '<state dict>',
    allow_custom_arch: bool = False
) -> Tuple['OrderedDict[str, Tensor]', ReleasedModelInfo]:
    """Map a released ``segmenter`` state dict to our key names.

    Args:
        state_dict (dict): The released state dict (``module.`` prefixed).
        source (str): Name used in messages (the file).
        allow_custom_arch (bool): See :func:`detect_released_model`.

    Returns:
        tuple: (our state dict with ``backbone.`` / ``decode_head.`` /
        ``alpha`` keys, CPU tensors, and the :class:`ReleasedModelInfo`).

    Raises:
        ReleasedCheckpointError: unknown model or a key that belongs to no
            known part of the release (named in the message).
    """
    if not isinstance(state_dict, dict) or not state_dict:
        raise _err(source, 'the "segmenter" entry is not a non-empty dict')
    for k, v in state_dict.items():
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise _err(source, f'entry {k!r} is a {type(v).__name__}, not a '
                       'tensor')
    info = detect_released_model(state_dict, source, allow_custom_arch)
    sd, names, _ = _to_release_names(state_dict, source)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in sd.items():
        try:
            new_key = released_key_to_ours(key)
        except KeyError:
            parts = ('alpha, backbone, decode_head' if info.layout == 'deliver'
                     else 'alpha, encoder, decoder')
            raise _err(
                source, f'unexpected key "{names[key]}": it belongs '
                f'to no part of a GeminiFusion segmenter ({parts})') from None
        if new_key is None:
            continue
        if new_key in out:
            raise _err(source, f'two keys map to {new_key!r}')
        value = value.detach()
        if value.device.type != 'meta':  # meta: shapes only (dry run)
            value = value.to('cpu').clone().contiguous()
        out[new_key] = value
        info.released_names[new_key] = names[key]
    if info.dropped_keys:
        print_log(
            f'{source}: dropped {len(info.dropped_keys)} score_predictor '
            f'key(s) (TokenFusion leftovers, unused by GeminiFusion), e.g. '
            f'{info.dropped_keys[0]!r}',
            logger='current')
    return out, info


def _expected_shapes(info: ReleasedModelInfo) -> Dict[str, Tuple[int, ...]]:
    """Keys and shapes of the matching model, built on the meta device."""
    from mmseg.registry import MODELS
    frag = model_config_fragment(info)
    head_cfg = dict(frag['decode_head'], norm_cfg=dict(type='BN'))
    with torch.device('meta'):
        backbone = MODELS.build(frag['backbone'])
        head = MODELS.build(head_cfg)
    shapes = {'alpha': (2, )}
    for prefix, module in (('backbone.', backbone), ('decode_head.', head)):
        for k, v in module.state_dict().items():
            shapes[prefix + k] = tuple(v.shape)
    return shapes


def _relative_position_index(window: int) -> Tensor:
    return WindowMSA(1, 1, window).relative_position_index


def check_converted_state_dict(state_dict: Dict[str, Tensor],
                               info: ReleasedModelInfo,
                               source: str = '<state dict>') -> None:
    """Check that a converted state dict fits the matching model exactly.

    Raises:
        ReleasedCheckpointError: a key the model lacks (named with its
            released name), a missing key or a wrong shape.
    """
    expected = _expected_shapes(info)

    def name(key):
        return info.released_names.get(key) or _released_name(key, info.family)

    for key, value in state_dict.items():
        if key not in expected:
            raise _err(
                source, f'unexpected key {name(key)!r} (-> {key!r}): '
                f'the {info.describe()} model has no such parameter')
        if tuple(value.shape) != expected[key]:
            raise _err(
                source, f'{name(key)!r} has shape '
                f'{tuple(value.shape)}, the model expects '
                f'{expected[key]}')
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise _err(
            source, f'{len(missing)} parameter(s) of the '
            f'{info.describe()} model are not in the checkpoint, '
            f'e.g. {missing[0]!r}')
    if info.family == 'swin':
        index = _relative_position_index(info.window_size)
        for key, value in state_dict.items():
            if key.endswith('relative_position_index') and not torch.equal(
                    value.long(), index):
                raise _err(
                    source, f'{name(key)!r} differs from the '
                    f'window-{info.window_size} index')


def _released_name(key: str, family: str) -> str:
    """Released name of one of our keys, without the ``.module`` wrappers
    (for messages)."""
    if key.startswith('decode_head.conv_seg.'):
        return 'module.decoder.linear_pred.' + key[len('decode_head.'
                                                       'conv_seg.'):]
    if key.startswith('decode_head.'):
        return 'module.decoder.' + key[len('decode_head.'):]
    if key.startswith('backbone.'):
        key_map = {m.family: m for m in _BACKBONE_KEY_MAPS}[family]
        return 'module.' + key_map.ours_to_released_name(
            key[len('backbone.'):])
    return 'module.' + key


def load_released_checkpoint(path: str) -> dict:
    """Read a released ``.pth.tar`` with ``weights_only=True``.

    Returns:
        dict: The file's dict (``segmenter``, ``epoch_start``,
        ``best_val``); a bare DeLiVER-branch state dict comes back as
        ``{'segmenter': state_dict}``.

    Raises:
        CheckpointLoadError: unreadable, or holds non-allow-listed objects
            (nothing in it is run).
        ReleasedCheckpointError: not a dict with a ``segmenter`` state dict.
    """
    ckpt = read_checkpoint(path)
    if is_deliver_state_dict(ckpt):
        return {'segmenter': ckpt}
    if not isinstance(ckpt, dict) or 'segmenter' not in ckpt:
        what = (f'a dict with keys {sorted(map(str, ckpt))[:8]}' if isinstance(
            ckpt, dict) else f'a {type(ckpt).__name__}')
        raise _err(
            path, f'not a released GeminiFusion checkpoint: expected '
            f'a dict with a "segmenter" state dict (or a bare '
            f'DeLiVER-branch state dict with {_DELIVER_MARK!r}), '
            f'found {what}')
    if not isinstance(ckpt['segmenter'], dict):
        raise _err(
            path, '"segmenter" is a '
            f'{type(ckpt["segmenter"]).__name__}, not a state dict')
    return ckpt


def _builtin(value):
    """numpy scalars -> Python numbers (weights-only friendly meta)."""
    if hasattr(value, 'item') and not isinstance(value, Tensor):
        try:
            return value.item()
        except (ValueError, TypeError):
            return None
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return None


def convert_released_checkpoint(
        src: str,
        dst: Optional[str] = None,
        allow_custom_arch: bool = False) -> Tuple[dict, ReleasedModelInfo]:
    """Convert a released ``.pth.tar`` to an mmengine checkpoint.

    The result ``{'meta': {...}, 'state_dict': ...}`` holds only tensors and
    builtins, so ``mmengine.runner.load_checkpoint(model, dst,
    strict=True)`` reads it under ``torch.load(weights_only=True)``.

    Args:
        src (str): The released file.
        dst (str, optional): Where to save the converted checkpoint
            (written to a temporary file in its folder and renamed when
            complete; a folder, or ``src`` itself, is refused).
        allow_custom_arch (bool): Accept sizes that are not a released
            variant.

    Returns:
        tuple: (the checkpoint dict, :class:`ReleasedModelInfo`).

    Raises:
        OutputPathError: ``dst`` is a folder or ``src`` itself.
        OSError: ``dst`` could not be written (it is then unchanged).
    """
    if dst is not None:  # refused before anything is read
        check_output_path(dst, src, 'converted checkpoint')
    raw = load_released_checkpoint(src)
    state_dict, info = convert_released_state_dict(raw['segmenter'], src,
                                                   allow_custom_arch)
    check_converted_state_dict(state_dict, info, src)
    meta = dict(
        converted_from=osp.basename(src),
        converter='geminifusion_mmseg geminifusion2mmseg',
        released_epoch_start=_builtin(raw.get('epoch_start')),
        released_best_val=_builtin(raw.get('best_val')),
        backbone=info.backbone_type,
        arch=_plain(info.arch),
        variant=info.name,
        num_classes=info.num_classes,
        num_modalities=info.num_modalities,
        released_layout=info.layout,
        dropped_keys=list(info.dropped_keys),
        model_config=model_config_fragment(info))
    dataset_meta = _dataset_meta(info.num_classes)
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta
    checkpoint = dict(meta=meta, state_dict=state_dict)
    if dst is not None:
        try:
            with atomic_output(dst, src, 'converted checkpoint') as tmp:
                torch.save(checkpoint, tmp)
        except (OSError, RuntimeError) as e:  # e.g. a full disk
            raise OSError(f'could not write {dst} ({e}); an existing {dst} '
                          'was left as it was.') from e
        print_log(
            f'converted {src} ({info.describe()}) -> {dst}', logger='current')
    return checkpoint, info


def _dataset_meta(num_classes: int) -> Optional[dict]:
    """classes/palette for 40 (NYUDv2), 37 (SUN RGB-D), 25 (DeLiVER) or 9
    (MFNet) classes, so that mmseg's inference API names the classes."""
    dataset = _DATASETS_BY_CLASSES.get(num_classes)
    if dataset is None:
        return None
    classes, palette = {
        'deliver': (DELIVER_CLASSES, DELIVER_PALETTE),
        'mfnet': (MFNET_CLASSES, MFNET_PALETTE),
    }.get(dataset, (NYUDV2_CLASSES, NYUDV2_PALETTE))
    return dict(
        classes=list(classes[:num_classes]),
        palette=[list(p) for p in palette[:num_classes]])


def find_released_state_dict(ckpt) -> Optional[Dict[str, Tensor]]:
    """The released ``segmenter`` state dict in a loaded file: its
    ``segmenter`` entry, or the file itself if it is a bare released state
    dict (keys ``module.encoder.*`` / ``encoder.*``, or a DeLiVER-branch
    state dict); None otherwise."""
    if not isinstance(ckpt, dict):
        return None
    if isinstance(ckpt.get('segmenter'), dict):
        return ckpt['segmenter']
    if is_deliver_state_dict(ckpt):
        return ckpt
    if any(
            isinstance(k, str) and k.startswith(('module.encoder.',
                                                 'encoder.')) for k in ckpt):
        return ckpt
    return None


def _config_num_modalities(path: str) -> int:
    """K from a config name's modality tag: ``..._deliver-rgbdel-...`` -> 4,
    ``rgbd`` / ``rgbt`` -> 2; 2 when there is none."""
    m = re.search(r'[_-]rgb([a-z]+)[-_.]', osp.basename(path).lower())
    return 1 + len(m.group(1)) if m else 2


def find_matching_configs(info: ReleasedModelInfo,
                          config_dir: str) -> List[str]:
    """Config files for the variant, named
    ``geminifusion_{name}_*.py`` (e.g. ``geminifusion_mit-b3_...``); those
    that mention the dataset of the class count (``nyu`` for 40, ``sun``
    for 37) come first. A DeLiVER-branch checkpoint matches only the
    configs of its dataset (``deliver`` for 25 classes, ``mfnet`` for 9)
    and modality count (``rgbd`` 2, ``rgbdel`` 4). Empty for a custom size
    or no such directory."""
    if info.name is None or not osp.isdir(config_dir):
        return []
    found = sorted(
        glob.glob(osp.join(config_dir, f'geminifusion_{info.name}_*.py')))
    tag = _DATASET_TAGS.get(info.dataset or '')
    if info.layout == 'deliver':
        return [
            p for p in found if tag and tag in osp.basename(p).lower()
            and _config_num_modalities(p) == info.num_modalities
        ]
    if tag:
        found.sort(key=lambda p: tag not in osp.basename(p).lower())
    return found

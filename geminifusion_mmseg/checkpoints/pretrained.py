"""ImageNet-pretrained (unimodal) weights -> a GeminiFusion backbone
(docs/model.md).

Used by :class:`~geminifusion_mmseg.models.backbones.GeminiFusionMiT` and
:class:`~geminifusion_mmseg.models.backbones.GeminiFusionSwin` when
``init_cfg=dict(type='Pretrained', checkpoint=PATH)``: the backbone's
``init_weights`` calls the loader registered here
(:func:`~geminifusion_mmseg.models.utils.register_pretrained_loader`), so
the models never import this package. The file is read with
``weights_only=True`` (:func:`read_checkpoint`) and its layout is recognised
from its keys, after unwrapping ``state_dict`` / ``model`` and the
``module.`` / ``backbone.`` prefixes (:func:`unwrap_state_dict`). The key
maps belong to each backbone family (``type(backbone).key_map``, e.g.
:class:`~geminifusion_mmseg.models.backbones.MiTKeyMap`, next to the
model):

=================  ==========================================================
format             recognised by / mapping
=================  ==========================================================
``nvlabs-mit``     SegFormer ``mit_b*.pth``: ``patch_embed1.proj.weight``,
                   ``block1.0.attn.q.weight``, ``norm1.weight``; our names
                   minus the ``.ln_{i}`` / ``.fusion.`` parts, with the stage
                   list flattened (``layers.0.blocks.0.`` -> ``block1.0.``).
                   ``head.*`` is dropped.
``mmseg-mit``      mmseg's ``MixVisionTransformer`` (``mit2mmseg``):
                   ``layers.{s}.0.projection`` (patch embedding),
                   ``layers.{s}.1.{j}`` (blocks: ``attn.attn.in_proj_*`` is
                   [q; kv], ``attn.attn.out_proj`` is ``proj``,
                   ``ffn.layers.0/1/4`` are fc1 (1x1 conv), dwconv, fc2),
                   ``layers.{s}.2`` (stage norm).
``microsoft-swin`` Microsoft ``swin_*.pth`` (``model``): ``patch_embed.proj``,
                   ``layers.{l}.blocks.{j}.*``, ``layers.{l}.downsample.*``,
                   and the classifier's final ``norm``, which normalises the
                   output of the LAST stage, so it becomes ``norm3``.
                   ``head.*`` and the ``attn_mask`` buffers are dropped.
``mmpretrain-swin`` mmpretrain / mmseg ``SwinTransformer`` (``swin2mmseg``):
                   ``patch_embed.projection``, ``stages.{l}.blocks.{j}.
                   attn.w_msa.*``, ``ffn.layers.0.0`` / ``ffn.layers.1``
                   (fc1 / fc2), ``stages.{l}.downsample.*``, ``norm{l}``.
                   Its patch merging gathers the 2x2 neighbours with
                   ``nn.Unfold`` (channel ``c * 4 + k``, k over (0,0),
                   (0,1), (1,0), (1,1)), Microsoft's (and ours) concatenates
                   (0,0), (1,0), (0,1), (1,1) blocks of C channels: the
                   reduction's input columns and the norm are permuted back
                   (the inverse of ``swin2mmseg``'s
                   ``correct_unfold_reduction_order`` /
                   ``correct_unfold_norm_order``).
``geminifusion``   our own names (e.g. a trained checkpoint of this plugin,
                   ``backbone.`` stripped; keys of earlier layout versions
                   are upgraded), or a released GeminiFusion ``.pth.tar``
                   (``segmenter``, converted on the fly): loaded 1:1,
                   fusion parameters included.
=================  ==========================================================

For the unimodal formats every shared weight is copied once, every
unimodal LayerNorm into BOTH modality norms (``ln_0`` and ``ln_1``), and the
GeminiFusion parameters keep their fresh initialisation (with K > 2
modalities also the token selection and the patch-embedding norms ``ln_2``,
``ln_3``, ..., as the DeLiVER branch loads); the
``relative_position_index`` buffers stay ours. A relative position bias
table of another window size (e.g. a window-7 checkpoint into a window-12
model) is resized bicubically, as mmseg and the release do, with a note in
the log; a different head count is an error. A tensor of any other shape is
an error naming the key (a checkpoint of another variant). Missing and
unexpected keys are logged; a file in no known format is an error naming
the file and some of its keys.

Note (the release's Swin): the published Swin code loaded Microsoft
checkpoints with a generic key rename that missed the per-modality norms,
so there the patch-embedding norm and the four output norms started at
ones/zeros. Pass ``load_modality_norms=False`` (in ``init_cfg``) to
reproduce that; the default copies them (docs/model.md).
"""
import logging
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from ..models.backbones.key_maps import MODALITY_NORM_RE, UNIMODAL_IGNORED_RE
from ..models.utils.pretrained_loading import register_pretrained_loader
from .io import (CheckpointFormatError, read_checkpoint, unwrap_state_dict,
                 upgrade_state_dict)
from .released import convert_released_state_dict, find_released_state_dict

__all__ = [
    'PretrainedFormatError', 'load_pretrained_backbone',
    'detect_pretrained_format'
]

GEMINIFUSION_FORMAT = 'geminifusion'


class PretrainedFormatError(CheckpointFormatError):
    """A pretrained checkpoint cannot be mapped onto the backbone."""


def _key_map(backbone: nn.Module):
    key_map = getattr(type(backbone), 'key_map', None)
    if key_map is None:
        raise TypeError('load_pretrained_backbone expects a GeminiFusion '
                        'backbone (a class with a key_map, e.g. '
                        f'GeminiFusionMiT), got {type(backbone).__name__}')
    return key_map


def detect_pretrained_format(sd: Dict[str, Tensor],
                             key_maps=None) -> Optional[str]:
    """'geminifusion' (per-modality norms ``.ln_{i}.``), else the ImageNet
    format of one of ``key_maps`` (default: both backbone families), e.g.
    'nvlabs-mit', 'mmseg-mit', 'microsoft-swin', 'mmpretrain-swin'; None
    if none fits."""
    if any(MODALITY_NORM_RE.search(k) for k in sd):
        return GEMINIFUSION_FORMAT
    if key_maps is None:
        from ..models.backbones import MiTKeyMap, SwinKeyMap
        key_maps = (MiTKeyMap, SwinKeyMap)
    for key_map in key_maps:
        fmt = key_map.detect_imagenet_format(sd)
        if fmt is not None:
            return fmt
    return None


def _resize_bias_table(table: Tensor, length: int) -> Tensor:
    """Bicubic resize of a (L1, nH) relative position bias table to
    (length, nH), as mmseg and the release do."""
    l1, nh = table.shape
    s1, s2 = int(round(l1**0.5)), int(round(length**0.5))
    grid = table.permute(1, 0).reshape(1, nh, s1, s1).float()
    grid = F.interpolate(grid, size=(s2, s2), mode='bicubic')
    return grid.reshape(nh, length).permute(1, 0).contiguous()


def _source_key(key: str, fmt: str, key_map) -> Optional[str]:
    """Our key -> the file's key (None: keep ours)."""
    if key.endswith('relative_position_index'):
        return None
    if fmt == GEMINIFUSION_FORMAT:
        return key
    return key_map.ours_to_canonical(key)


def _read_backbone_state_dict(path: str, prefix: Optional[str]):
    """The file's backbone state dict (released checkpoints converted to
    our names first) and the keys left out."""
    ckpt = read_checkpoint(path)
    released = find_released_state_dict(ckpt)
    if released is not None:
        converted, _ = convert_released_state_dict(
            released, path, allow_custom_arch=True)
        ckpt, prefix = converted, 'backbone.'
    try:
        return unwrap_state_dict(ckpt, path, prefix)
    except CheckpointFormatError as e:
        raise PretrainedFormatError(str(e)) from None


@register_pretrained_loader('default')
def load_pretrained_backbone(backbone: nn.Module,
                             checkpoint_path: str,
                             load_modality_norms: bool = True,
                             prefix: Optional[str] = None) -> dict:
    """Load ImageNet-pretrained unimodal weights into a GeminiFusion backbone.

    Args:
        backbone (nn.Module): A ``GeminiFusionMiT`` or ``GeminiFusionSwin``,
            already initialised (fusion layers keep that initialisation).
        checkpoint_path (str): Local file in one of the formats of this
            module's docstring.
        load_modality_norms (bool): Copy each unimodal LayerNorm into the
            per-modality norms. Defaults to True; False leaves them at their
            initialisation (what the released Swin code ended up doing).
        prefix (str, optional): Take only the keys under this prefix
            (default: ``backbone.`` if present).

    Returns:
        dict: ``format``, ``loaded`` (our keys set from the file),
        ``missing`` (keys the file lacks, named as in its format after the
        conversion to the canonical layout; fusion excluded), ``fresh``
        (left at their init on purpose: fusion parameters, the output
        norms of stages 0-2 with a Microsoft classifier checkpoint, the
        modality norms with ``load_modality_norms=False``), ``unexpected``
        (file keys not used), ``ignored`` (dropped on purpose: heads,
        masks, indices, other prefixes), ``resized`` (bias tables
        resized).

    Raises:
        PretrainedFormatError: unknown format (names the file and some
            keys), a checkpoint of the other backbone family, a tensor of
            the wrong shape, or nothing to load.
        CheckpointLoadError: unreadable / unsafe file.
    """
    key_map = _key_map(backbone)
    sd, left_out = _read_backbone_state_dict(checkpoint_path, prefix)
    fmt = detect_pretrained_format(sd)
    if fmt is None:
        raise PretrainedFormatError(
            f'{checkpoint_path}: not a known pretrained-backbone format '
            '(NVlabs mit_b*.pth, mmseg MiT, Microsoft Swin, mmpretrain '
            f'Swin, or GeminiFusion); some of its keys: {list(sd)[:6]}')
    wanted = tuple(key_map.imagenet_formats)
    if fmt == GEMINIFUSION_FORMAT:
        source, unknown = upgrade_state_dict(backbone, sd), []
    elif fmt in wanted:
        source, unknown = key_map.imagenet_to_canonical(sd, fmt)
    else:
        raise PretrainedFormatError(
            f'{checkpoint_path}: a {fmt} checkpoint cannot initialise '
            f'{type(backbone).__name__} (expected one of {wanted})')

    own = backbone.state_dict()
    report = dict(
        format=fmt,
        loaded=[],
        missing=[],
        fresh=[],
        unexpected=[],
        ignored=[],
        resized=[])
    used = set()
    for key, target in own.items():
        src = _source_key(key, fmt, key_map)
        if src is None:
            if not key.endswith('relative_position_index'):
                # fusion layers; with K > 2 modalities the token selection
                # and the patch-embed norms ln_2.. (docs/model.md)
                report['fresh'].append(key)
            continue
        if not load_modality_norms and fmt != GEMINIFUSION_FORMAT and \
                MODALITY_NORM_RE.search(key):
            report['fresh'].append(key)
            used.add(src)
            continue
        if src not in source:
            if key_map.fresh_when_missing(src, fmt):
                report['fresh'].append(key)
            else:
                report['missing'].append(src)
            continue
        value = source[src]
        used.add(src)
        if value.shape != target.shape:
            if key.endswith('relative_position_bias_table') and \
                    value.dim() == 2 and value.shape[1] == target.shape[1]:
                value = _resize_bias_table(value, target.shape[0])
                report['resized'].append(key)
            else:
                raise PretrainedFormatError(
                    f'{checkpoint_path}: {src!r} has shape '
                    f'{tuple(value.shape)} but {type(backbone).__name__}.'
                    f'{key} is {tuple(target.shape)}; is it a checkpoint of '
                    'another variant?')
        with torch.no_grad():
            target.copy_(value.to(dtype=target.dtype))
        report['loaded'].append(key)
    for k in source:
        if k in used:
            continue
        (report['ignored']
         if UNIMODAL_IGNORED_RE.search(k) else report['unexpected']).append(k)
    report['unexpected'] += unknown
    report['ignored'] += left_out
    if not report['loaded']:
        raise PretrainedFormatError(
            f'{checkpoint_path}: no tensor of this {fmt} checkpoint fits '
            f'{type(backbone).__name__}; some of its keys: {list(sd)[:6]}')
    _log_report(report, checkpoint_path, type(backbone).__name__)
    return report


def _short(keys: List[str], n: int = 8) -> str:
    head = ', '.join(keys[:n])
    return head + (f', ... ({len(keys)} in all)' if len(keys) > n else '')


def _log_report(report: dict, path: str, name: str) -> None:
    print_log(
        f'{name}: loaded {len(report["loaded"])} tensors from {path} '
        f'({report["format"]}); {len(report["fresh"])} tensors without a '
        'unimodal counterpart (GeminiFusion layers, new output norms) keep '
        'their initialisation',
        logger='current')
    if report['resized']:
        print_log(
            f'{name}: relative position bias tables resized (bicubic) to '
            f'the window size: {_short(report["resized"], 2)}',
            logger='current')
    if report['ignored']:
        print_log(
            f'{name}: dropped from {path} (not part of the backbone): '
            f'{_short(report["ignored"], 4)}',
            logger='current')
    if report['missing']:
        print_log(
            f'{name}: missing keys in {path}: {_short(report["missing"])}',
            logger='current',
            level=logging.WARNING)
    if report['unexpected']:
        print_log(
            f'{name}: unexpected keys in {path}: '
            f'{_short(report["unexpected"])}',
            logger='current',
            level=logging.WARNING)

"""ImageNet-pretrained (unimodal) weights -> a GeminiFusion backbone (SPEC 4).

Used by :class:`~geminifusion_mmseg.models.backbones.GeminiFusionMiT` and
:class:`~geminifusion_mmseg.models.backbones.GeminiFusionSwin` when
``init_cfg=dict(type='Pretrained', checkpoint=PATH)``. The file is read with
``weights_only=True`` (:func:`load_external_checkpoint`) and its layout is
recognised from its keys, after unwrapping ``state_dict`` / ``model`` and the
``module.`` / ``backbone.`` prefixes:

=================  ==========================================================
format             recognised by / mapping
=================  ==========================================================
``nvlabs-mit``     SegFormer ``mit_b*.pth``: ``patch_embed1.proj.weight``,
                   ``block1.0.attn.q.weight``, ``norm1.weight``; our names
                   minus the ``.ln_{i}`` / ``.fusion.`` parts. ``head.*`` is
                   dropped.
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
                   ``backbone.`` stripped), or a released GeminiFusion
                   ``.pth.tar`` (``segmenter``, converted on the fly): loaded
                   1:1, fusion parameters included.
=================  ==========================================================

For the unimodal formats every shared weight is copied once, every
unimodal LayerNorm into BOTH modality norms (``ln_0`` and ``ln_1``), and the
GeminiFusion parameters keep their fresh initialisation; the
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
reproduce that; the default copies them (SPEC 4).
"""
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from ...utils.checkpoint import load_external_checkpoint

__all__ = [
    'PretrainedFormatError', 'load_pretrained_backbone', 'is_pretrained_cfg',
    'pretrained_kwargs',
    'unwrap_state_dict', 'detect_pretrained_format', 'to_unimodal_layout',
    'mmseg_mit_to_nvlabs', 'mmpretrain_swin_to_microsoft',
    'unfold_to_concat_reduction', 'unfold_to_concat_norm'
]

MIT_FORMATS = ('nvlabs-mit', 'mmseg-mit')
SWIN_FORMATS = ('microsoft-swin', 'mmpretrain-swin')
_MODALITY_NORM_RE = re.compile(r'\.ln_\d+\.')
# Keys of unimodal checkpoints that have no counterpart and are dropped
# with a note: classifier heads, Swin's shift masks and relative position
# indices (ours are used).
_IGNORED_RE = re.compile(
    r'(^head\.|(^|\.)attn_mask$|(^|\.)relative_position_index$)')


class PretrainedFormatError(ValueError):
    """A pretrained checkpoint cannot be mapped onto the backbone."""


def is_pretrained_cfg(init_cfg) -> bool:
    """Whether ``init_cfg`` is ``dict(type='Pretrained', checkpoint=...)``."""
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def pretrained_kwargs(init_cfg: dict) -> dict:
    """:func:`load_pretrained_backbone` arguments from a ``Pretrained``
    ``init_cfg`` (``checkpoint``; optional ``load_modality_norms``,
    ``prefix``; mmengine's ``map_location`` is accepted and ignored: the
    file is always read onto the CPU)."""
    if 'checkpoint' not in init_cfg:
        raise ValueError("init_cfg=dict(type='Pretrained') needs a "
                         f"'checkpoint' path, got {init_cfg}")
    known = {'type', 'checkpoint', 'load_modality_norms', 'prefix',
             'map_location'}
    extra = set(init_cfg) - known
    if extra:
        raise ValueError(f'unknown keys {sorted(extra)} in the Pretrained '
                         f'init_cfg {init_cfg}; known: {sorted(known)}')
    kwargs = dict(checkpoint_path=init_cfg['checkpoint'])
    for k in ('load_modality_norms', 'prefix'):
        if k in init_cfg:
            kwargs[k] = init_cfg[k]
    return kwargs


def _family(backbone: nn.Module) -> str:
    from ..backbones.gemini_mit import GeminiFusionMiT
    from ..backbones.gemini_swin import GeminiFusionSwin
    if isinstance(backbone, GeminiFusionMiT):
        return 'mit'
    if isinstance(backbone, GeminiFusionSwin):
        return 'swin'
    raise TypeError('load_pretrained_backbone expects a GeminiFusionMiT or '
                    f'GeminiFusionSwin, got {type(backbone).__name__}')


def unwrap_state_dict(ckpt, path: str = '<checkpoint>',
                      prefix: Optional[str] = None
                      ) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """The backbone's state dict inside a checkpoint.

    Takes ``ckpt['state_dict']`` or ``ckpt['model']`` if present (else the
    dict itself), drops a ``module.`` prefix carried by every key, then, if
    ``prefix`` is given or some keys start with ``backbone.``, keeps only
    the keys under that prefix (stripped).

    Returns:
        tuple: (state dict of tensors, keys left out: other prefixes or
        non-tensor entries).
    """
    if not isinstance(ckpt, dict):
        raise PretrainedFormatError(
            f'{path}: expected a dict (a state dict, or one under '
            f'"state_dict" / "model"), got a {type(ckpt).__name__}')
    sd = ckpt
    for wrapper in ('state_dict', 'model'):
        if isinstance(ckpt.get(wrapper), dict):
            sd = ckpt[wrapper]
            break
    left_out = [str(k) for k, v in sd.items()
                if not (isinstance(k, str) and isinstance(v, Tensor))]
    sd = OrderedDict((k, v) for k, v in sd.items()
                     if isinstance(k, str) and isinstance(v, Tensor))
    if sd and all(k.startswith('module.') for k in sd):
        sd = OrderedDict((k[len('module.'):], v) for k, v in sd.items())
    if prefix is None and any(k.startswith('backbone.') for k in sd):
        prefix = 'backbone.'
    if prefix:
        left_out += [k for k in sd if not k.startswith(prefix)]
        sd = OrderedDict((k[len(prefix):], v) for k, v in sd.items()
                         if k.startswith(prefix))
    return sd, left_out


def detect_pretrained_format(sd: Dict[str, Tensor]) -> Optional[str]:
    """'nvlabs-mit', 'mmseg-mit', 'microsoft-swin', 'mmpretrain-swin',
    'geminifusion' or None."""
    keys = set(sd)
    if any(_MODALITY_NORM_RE.search(k) for k in keys):
        return 'geminifusion'
    if 'patch_embed1.proj.weight' in keys and any(
            k.startswith('block1.0.') for k in keys):
        return 'nvlabs-mit'
    if 'layers.0.0.projection.weight' in keys and any(
            k.startswith('layers.0.1.0.') for k in keys):
        return 'mmseg-mit'
    if 'patch_embed.proj.weight' in keys and any(
            k.startswith('layers.0.blocks.0.') for k in keys):
        return 'microsoft-swin'
    if 'patch_embed.projection.weight' in keys and any(
            k.startswith('stages.0.blocks.0.') for k in keys):
        return 'mmpretrain-swin'
    return None


def mmseg_mit_to_nvlabs(sd: Dict[str, Tensor]
                        ) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """mmseg ``MixVisionTransformer`` names -> NVlabs SegFormer names (the
    inverse of mmseg's ``mit2mmseg``). Returns (state dict, unknown
    keys)."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown: List[str] = []
    for k, v in sd.items():
        m = re.match(r'^layers\.(\d+)\.([012])\.(.+)$', k)
        if not m:
            unknown.append(k)
            continue
        s, part, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
        if part == '0':
            if rest.startswith('projection.'):
                rest = 'proj.' + rest[len('projection.'):]
            out[f'patch_embed{s}.{rest}'] = v
            continue
        if part == '2':
            out[f'norm{s}.{rest}'] = v
            continue
        mb = re.match(r'^(\d+)\.(.+)$', rest)
        if not mb:
            unknown.append(k)
            continue
        base, r = f'block{s}.{mb.group(1)}.', mb.group(2)
        if r in ('attn.attn.in_proj_weight', 'attn.attn.in_proj_bias'):
            c = v.shape[0] // 3
            p = r.rsplit('_', 1)[1]  # weight | bias
            out[f'{base}attn.q.{p}'] = v[:c]
            out[f'{base}attn.kv.{p}'] = v[c:]
        elif r.startswith('attn.attn.out_proj.'):
            out[f'{base}attn.proj.' + r[len('attn.attn.out_proj.'):]] = v
        elif r.startswith(('attn.sr.', 'attn.norm.', 'norm1.', 'norm2.')):
            out[base + r] = v
        elif r.startswith('ffn.layers.0.'):
            out[f'{base}mlp.fc1.' + r[len('ffn.layers.0.'):]] = \
                v.flatten(1) if v.dim() == 4 else v
        elif r.startswith('ffn.layers.1.'):
            out[f'{base}mlp.dwconv.dwconv.' + r[len('ffn.layers.1.'):]] = v
        elif r.startswith('ffn.layers.4.'):
            out[f'{base}mlp.fc2.' + r[len('ffn.layers.4.'):]] = \
                v.flatten(1) if v.dim() == 4 else v
        else:
            unknown.append(k)
    return out, unknown


def unfold_to_concat_reduction(weight: Tensor) -> Tensor:
    """Patch-merging reduction weight (out, 4C) from the ``nn.Unfold``
    channel order (c * 4 + k) to the concatenation order used by Microsoft
    and here (block m of C channels, m over (0,0), (1,0), (0,1), (1,1)).
    Inverse of mmseg's ``correct_unfold_reduction_order``."""
    out_c, in_c = weight.shape
    w = weight.reshape(out_c, in_c // 4, 4).transpose(1, 2)
    return w[:, [0, 2, 1, 3], :].reshape(out_c, in_c)


def unfold_to_concat_norm(vector: Tensor) -> Tensor:
    """The same permutation for the patch-merging norm (4C,). Inverse of
    mmseg's ``correct_unfold_norm_order``."""
    in_c = vector.shape[0]
    v = vector.reshape(in_c // 4, 4).transpose(0, 1)
    return v[[0, 2, 1, 3], :].reshape(in_c)


def mmpretrain_swin_to_microsoft(
        sd: Dict[str, Tensor]
) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """mmpretrain / mmseg ``SwinTransformer`` names -> Microsoft names (the
    inverse of mmseg's ``swin2mmseg``, patch-merging order included).
    Returns (state dict, unknown keys)."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown: List[str] = []
    for k, v in sd.items():
        if k.startswith('patch_embed.projection.'):
            out['patch_embed.proj.' + k[len('patch_embed.projection.'):]] = v
            continue
        if k.startswith('patch_embed.norm.') or re.match(
                r'^norm\d*\.', k) or _IGNORED_RE.search(k):
            out[k] = v
            continue
        m = re.match(r'^stages\.(\d+)\.(.+)$', k)
        if not m:
            unknown.append(k)
            continue
        layer, r = m.group(1), m.group(2)
        mb = re.match(r'^blocks\.(\d+)\.(.+)$', r)
        if mb:
            base, r = f'layers.{layer}.blocks.{mb.group(1)}.', mb.group(2)
            if r.startswith('attn.w_msa.'):
                out[base + 'attn.' + r[len('attn.w_msa.'):]] = v
            elif r.startswith('ffn.layers.0.0.'):
                out[base + 'mlp.fc1.' + r[len('ffn.layers.0.0.'):]] = v
            elif r.startswith('ffn.layers.1.'):
                out[base + 'mlp.fc2.' + r[len('ffn.layers.1.'):]] = v
            elif r.startswith(('norm1.', 'norm2.')):
                out[base + r] = v
            else:
                unknown.append(k)
        elif r == 'downsample.reduction.weight':
            out[f'layers.{layer}.{r}'] = unfold_to_concat_reduction(v)
        elif r.startswith('downsample.norm.'):
            out[f'layers.{layer}.{r}'] = unfold_to_concat_norm(v)
        else:
            unknown.append(k)
    return out, unknown


def to_unimodal_layout(sd: Dict[str, Tensor], fmt: str
                       ) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """NVlabs names (MiT) / Microsoft names (Swin), whatever ``fmt``."""
    if fmt == 'mmseg-mit':
        return mmseg_mit_to_nvlabs(sd)
    if fmt == 'mmpretrain-swin':
        return mmpretrain_swin_to_microsoft(sd)
    return OrderedDict(sd), []


def _resize_bias_table(table: Tensor, length: int) -> Tensor:
    """Bicubic resize of a (L1, nH) relative position bias table to
    (length, nH), as mmseg and the release do."""
    l1, nh = table.shape
    s1, s2 = int(round(l1**0.5)), int(round(length**0.5))
    grid = table.permute(1, 0).reshape(1, nh, s1, s1).float()
    grid = F.interpolate(grid, size=(s2, s2), mode='bicubic')
    return grid.reshape(nh, length).permute(1, 0).contiguous()


def _source_key(key: str, fmt: str, family: str) -> Optional[str]:
    """Our key -> the unimodal checkpoint's key (None: keep ours)."""
    if key.endswith('relative_position_index'):
        return None
    if fmt == 'geminifusion':
        return key
    if '.fusion.' in key:
        return None
    return _MODALITY_NORM_RE.sub('.', key)


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
        ``missing`` (our keys the file lacks, fusion excluded), ``fresh``
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
    family = _family(backbone)
    ckpt = load_external_checkpoint(checkpoint_path)
    released = None
    if isinstance(ckpt, dict) and isinstance(ckpt.get('segmenter'), dict):
        released = ckpt['segmenter']
    elif isinstance(ckpt, dict) and any(
            isinstance(k, str) and k.startswith(('module.encoder.',
                                                 'encoder.'))
            for k in ckpt):
        released = ckpt  # a bare released state dict
    if released is not None:
        from .released_checkpoint import convert_released_state_dict
        converted, _ = convert_released_state_dict(
            released, checkpoint_path, allow_custom_arch=True)
        ckpt, prefix = converted, 'backbone.'
    sd, left_out = unwrap_state_dict(ckpt, checkpoint_path, prefix)
    fmt = detect_pretrained_format(sd)
    if fmt is None:
        raise PretrainedFormatError(
            f'{checkpoint_path}: not a known pretrained-backbone format '
            '(NVlabs mit_b*.pth, mmseg MiT, Microsoft Swin, mmpretrain '
            f'Swin, or GeminiFusion); some of its keys: {list(sd)[:6]}')
    wanted = MIT_FORMATS if family == 'mit' else SWIN_FORMATS
    if fmt not in wanted + ('geminifusion', ):
        raise PretrainedFormatError(
            f'{checkpoint_path}: a {fmt} checkpoint cannot initialise '
            f'{type(backbone).__name__} (expected one of {wanted})')
    source, unknown = to_unimodal_layout(sd, fmt)
    if family == 'swin' and fmt != 'geminifusion' and \
            'norm3.weight' not in source and 'norm.weight' in source:
        # The classifier's final norm follows the last stage.
        for p in ('weight', 'bias'):
            if f'norm.{p}' in source:
                source[f'norm3.{p}'] = source.pop(f'norm.{p}')

    own = backbone.state_dict()
    report = dict(format=fmt, loaded=[], missing=[], fresh=[],
                  unexpected=[], ignored=[], resized=[])
    used = set()
    for key, target in own.items():
        src = _source_key(key, fmt, family)
        if src is None:
            if '.fusion.' in key:
                report['fresh'].append(key)
            continue
        if not load_modality_norms and fmt != 'geminifusion' and \
                _MODALITY_NORM_RE.search(key):
            report['fresh'].append(key)
            used.add(src)
            continue
        if src not in source:
            if fmt == 'microsoft-swin' and re.match(r'^norm[012]\.', src):
                # A classifier has one final norm (stage 3's); the output
                # norms of stages 0-2 are new in the segmentation backbone.
                report['fresh'].append(key)
            else:
                report['missing'].append(key)
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
        (report['ignored'] if _IGNORED_RE.search(k) else
         report['unexpected']).append(k)
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

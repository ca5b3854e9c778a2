"""Key maps of :class:`GeminiFusionSwin` (see :mod:`.key_maps`).

Our layout is the release's (``module.encoder.body.`` stripped) with the
``.module`` wrappers dropped and each block's fusion parameters grouped
under ``fusion.``: ``layers.{l}.blocks.{j}.<name>`` ->
``layers.{l}.blocks.{j}.fusion.<name>``. ImageNet formats:
``microsoft-swin`` (canonical; the classifier's final ``norm``, which
follows the LAST stage, becomes ``norm3``, and the output norms of stages
0-2 are new) and ``mmpretrain-swin`` (mmpretrain / mmseg
``SwinTransformer``, mapped back by :func:`mmpretrain_swin_to_microsoft`).
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Tuple, Union

from torch import Tensor

from .key_maps import (UNIMODAL_IGNORED_RE, BackboneKeyMap,
                       ReleasedLayoutError, released_block_depths,
                       released_shape)

__all__ = [
    'SwinKeyMap', 'mmpretrain_swin_to_microsoft', 'unfold_to_concat_reduction',
    'unfold_to_concat_norm'
]


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
        sd: Dict[str, Tensor]) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """mmpretrain / mmseg ``SwinTransformer`` names -> Microsoft names (the
    inverse of mmseg's ``swin2mmseg``, patch-merging order included; keys
    without a counterpart, :data:`UNIMODAL_IGNORED_RE`, pass through).
    Returns (state dict, unknown keys)."""
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unknown: List[str] = []
    for k, v in sd.items():
        if k.startswith('patch_embed.projection.'):
            out['patch_embed.proj.' + k[len('patch_embed.projection.'):]] = v
            continue
        if k.startswith('patch_embed.norm.') or re.match(
                r'^norm\d*\.', k) or UNIMODAL_IGNORED_RE.search(k):
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


def _classifier_norm_to_norm3(
        sd: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """A classifier checkpoint's final ``norm`` normalises the output of
    the last stage: it becomes ``norm3`` (unless the file has one)."""
    out = OrderedDict(sd)
    if 'norm3.weight' not in out and 'norm.weight' in out:
        for p in ('weight', 'bias'):
            if f'norm.{p}' in out:
                out[f'norm3.{p}'] = out.pop(f'norm.{p}')
    return out


def _microsoft_to_canonical(sd):
    return _classifier_norm_to_norm3(sd), []


def _mmpretrain_to_canonical(sd):
    out, unknown = mmpretrain_swin_to_microsoft(sd)
    return _classifier_norm_to_norm3(out), unknown


#: Config-file names of the released variants
#: (``configs/geminifusion/geminifusion_{name}_*.py``).
SWIN_CONFIG_NAMES = {
    'tiny': 'swin-t',
    'small': 'swin-s',
    'large': 'swin-l',
    'large-384': 'swin-l-384'
}


class SwinKeyMap(BackboneKeyMap):
    """Key maps of :class:`GeminiFusionSwin` (module docstring)."""
    family = 'swin'
    released_prefix = 'encoder.body.'
    fusion_parent = r'layers\.\d+\.blocks\.\d+'
    imagenet_formats = {
        'microsoft-swin': (('patch_embed.proj.weight', 'layers.0.blocks.0.'),
                           _microsoft_to_canonical),
        'mmpretrain-swin': (('patch_embed.projection.weight',
                             'stages.0.blocks.0.'), _mmpretrain_to_canonical),
    }
    version = 1

    @classmethod
    def fresh_when_missing(cls, canonical_key: str, fmt: str) -> bool:
        # A classifier has one final norm (stage 3's); the output norms of
        # stages 0-2 are new in the segmentation backbone.
        return fmt == 'microsoft-swin' and bool(
            re.match(r'^norm[012]\.', canonical_key))

    @classmethod
    def detect_released(cls,
                        sd: Dict[str, Tensor],
                        arch_zoo: Dict[str, dict],
                        allow_custom: bool = False) -> dict:
        """Swin tiny/small/large/large-384 from the width, block counts,
        heads and window size (``relative_position_bias_table`` has
        ``(2 * window - 1)**2`` rows); see
        :meth:`BackboneKeyMap.detect_released`."""
        p = 'encoder.body.'
        keys = list(sd)
        c0 = released_shape(sd, p + 'patch_embed.proj.module.weight')[0]
        depths = released_block_depths(
            keys, r'^encoder\.body\.layers\.(\d+)\.blocks\.'
            r'(\d+)\.', (0, 1, 2, 3))
        heads, windows = [], []
        for s in range(4):
            key = (f'{p}layers.{s}.blocks.0.attn.module.'
                   'relative_position_bias_table')
            length, nh = released_shape(sd, key)
            ws = (math.isqrt(length) + 1) // 2
            if (2 * ws - 1)**2 != length:
                raise ReleasedLayoutError(
                    f'{key!r} has {length} rows, not (2 * window '
                    '- 1)**2 for any window size')
            heads.append(nh)
            windows.append(ws)
        if len(set(windows)) != 1:
            raise ReleasedLayoutError(
                f'window sizes differ between stages: {windows}')
        window = windows[0]
        mlp_ratio = released_shape(
            sd, p + 'layers.0.blocks.0.mlp.fc1.module.weight')[0] // c0
        dims = tuple(c0 * 2**i for i in range(4))
        name = None
        for arch, cfg in arch_zoo.items():
            if (cfg['embed_dims'] == c0 and tuple(cfg['depths']) == depths
                    and tuple(cfg['num_heads']) == tuple(heads)
                    and cfg['window_size'] == window):
                name = arch
        if name is None or mlp_ratio != 4:
            what = (f'embed dims {c0}, depths {depths}, heads {tuple(heads)}, '
                    f'window {window}, mlp ratio {mlp_ratio}')
            if not allow_custom or mlp_ratio != 4:
                known = ', '.join(
                    f"{a}: {c['embed_dims']}/{tuple(c['depths'])}/"
                    f"{tuple(c['num_heads'])}/window {c['window_size']}"
                    for a, c in arch_zoo.items())
                hint = '' if mlp_ratio != 4 else (
                    ' Pass allow_custom_arch=True (--allow-custom-arch) to '
                    'convert a custom size anyway.')
                raise ReleasedLayoutError(
                    f'unknown Swin variant ({what}); known: {known}.' + hint)
            arch: Union[str, dict] = dict(
                embed_dims=c0,
                depths=depths,
                num_heads=tuple(heads),
                window_size=window)
        else:
            arch = name
            name = SWIN_CONFIG_NAMES[name]
        return dict(
            family='swin',
            backbone_type='GeminiFusionSwin',
            arch=arch,
            name=name,
            embed_dims=dims,
            depths=depths,
            num_heads=tuple(heads),
            window_size=window,
            mlp_ratio=mlp_ratio)

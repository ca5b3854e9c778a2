"""Key maps of :class:`GeminiFusionMiT` (see :mod:`.key_maps`).

Our layout (version 2) keeps the stages in one list, as mmseg's
``MixVisionTransformer``; the release, NVlabs SegFormer and our version 1
use flat per-stage names::

    release / NVlabs / ours v1        ours (v2)
    patch_embed{s}.*                  layers.{s-1}.patch_embed.*
    block{s}.{j}.*                    layers.{s-1}.blocks.{j}.*
    norm{s}.*                         layers.{s-1}.norm.*

Fusion parameters: released ``block{s}.{j}.attn.<name>`` ->
``layers.{s-1}.blocks.{j}.attn.fusion.<name>``; ``.module`` wrappers of the
release are dropped. ImageNet formats: ``nvlabs-mit`` (canonical) and
``mmseg-mit`` (mmseg's ``mit2mmseg`` layout, mapped back by
:func:`mmseg_mit_to_nvlabs`).
"""
import re
from collections import OrderedDict
from typing import Dict, List, Tuple, Union

from torch import Tensor

from .key_maps import (BackboneKeyMap, ReleasedLayoutError,
                       released_block_depths, released_shape)

__all__ = [
    'MiTKeyMap', 'mmseg_mit_to_nvlabs', 'MIT_DEFAULT_SR',
    'MIT_DEFAULT_MLP_RATIO'
]

#: Spatial-reduction ratios and MLP ratio of every released MiT variant.
MIT_DEFAULT_SR = (8, 4, 2, 1)
MIT_DEFAULT_MLP_RATIO = 4

_FLAT_RE = re.compile(r'^(patch_embed|block|norm)([1-4])\.')
_STAGE_RE = re.compile(r'^layers\.([0-3])\.(patch_embed|blocks|norm)\.')
#: Keys without a unimodal counterpart in the K-modality (DeLiVER) layout:
#: the token selection, and the patch-embedding norms of the third and
#: later modalities, which the branch's ``_expand_state_dict`` leaves at
#: their initialisation (it fills ``ln_0`` and ``ln_1`` only).
_NO_UNIMODAL_RE = re.compile(
    r'(\.token_select\.|\.patch_embed\.norm\.ln_([2-9]|\d{2,})\.)')
_FLAT_TO_STAGE = {
    'patch_embed': 'patch_embed',
    'block': 'blocks',
    'norm': 'norm'
}
_STAGE_TO_FLAT = {v: k for k, v in _FLAT_TO_STAGE.items()}


def mmseg_mit_to_nvlabs(
        sd: Dict[str, Tensor]) -> Tuple['OrderedDict[str, Tensor]', List[str]]:
    """mmseg ``MixVisionTransformer`` names -> NVlabs SegFormer names (the
    inverse of mmseg's ``mit2mmseg``: ``attn.attn.in_proj_*`` is [q; kv],
    ``attn.attn.out_proj`` is ``proj``, ``ffn.layers.0/1/4`` are fc1 (1x1
    conv), dwconv, fc2). Returns (state dict, unknown keys)."""
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


class MiTKeyMap(BackboneKeyMap):
    """Key maps of :class:`GeminiFusionMiT` (module docstring)."""
    family = 'mit'
    released_prefix = 'encoder.'
    fusion_parent = r'layers\.\d+\.blocks\.\d+\.attn'
    imagenet_formats = {
        'nvlabs-mit': (('patch_embed1.proj.weight', 'block1.0.'), None),
        'mmseg-mit': (('layers.0.0.projection.weight', 'layers.0.1.0.'),
                      mmseg_mit_to_nvlabs),
    }
    version = 2

    @classmethod
    def ours_to_canonical(cls, key: str):
        """As :meth:`BackboneKeyMap.ours_to_canonical`; None also for the
        token selection and the patch-embedding norms ``ln_2``, ``ln_3``,
        ... (docs/model.md "K modalities")."""
        if _NO_UNIMODAL_RE.search(key):
            return None
        return super().ours_to_canonical(key)

    @classmethod
    def release_layout_to_ours(cls, key: str) -> str:
        m = _FLAT_RE.match(key)
        if m is None:
            return key
        return (f'layers.{int(m.group(2)) - 1}.'
                f'{_FLAT_TO_STAGE[m.group(1)]}.' + key[m.end():])

    @classmethod
    def ours_to_release_layout(cls, key: str) -> str:
        m = _STAGE_RE.match(key)
        if m is None:
            return key
        return (f'{_STAGE_TO_FLAT[m.group(2)]}{int(m.group(1)) + 1}.' +
                key[m.end():])

    @classmethod
    def detect_released(cls,
                        sd: Dict[str, Tensor],
                        arch_zoo: Dict[str, dict],
                        allow_custom: bool = False) -> dict:
        """MiT-B0..B5 from the stage widths and block counts (see
        :meth:`BackboneKeyMap.detect_released`)."""
        keys = list(sd)
        dims = tuple(
            released_shape(sd, f'encoder.patch_embed{s}.proj.module.weight')[0]
            for s in range(1, 5))
        depths = released_block_depths(keys, r'^encoder\.block(\d+)\.(\d+)\.',
                                       (1, 2, 3, 4))
        sr = []
        for s in range(1, 5):
            key = f'encoder.block{s}.0.attn.sr.module.weight'
            sr.append(released_shape(sd, key)[-1] if key in sd else 1)
        mlp_ratio = released_shape(
            sd, 'encoder.block1.0.mlp.fc1.module.weight')[0] // dims[0]
        name = None
        for arch, cfg in arch_zoo.items():
            if tuple(cfg['embed_dims']) == dims and tuple(
                    cfg['depths']) == depths:
                name = arch
        standard = tuple(sr) == MIT_DEFAULT_SR and \
            mlp_ratio == MIT_DEFAULT_MLP_RATIO
        if name is None or not standard:
            what = (f'embed dims {dims}, depths {depths}, sr ratios '
                    f'{tuple(sr)}, mlp ratio {mlp_ratio}')
            if not allow_custom:
                known = ', '.join(
                    f"{a}: {tuple(c['embed_dims'])}/{tuple(c['depths'])}"
                    for a, c in arch_zoo.items())
                raise ReleasedLayoutError(
                    f'unknown MiT variant ({what}); known: {known} '
                    '(sr ratios (8, 4, 2, 1), mlp ratio 4). Pass '
                    'allow_custom_arch=True (--allow-custom-arch) to '
                    'convert a custom size anyway.')
            arch: Union[str, dict] = dict(embed_dims=dims, depths=depths)
            name = None
        else:
            arch = name
            name = f'mit-{name}'
        return dict(
            family='mit',
            backbone_type='GeminiFusionMiT',
            arch=arch,
            name=name,
            embed_dims=dims,
            depths=depths,
            sr_ratios=tuple(sr),
            mlp_ratio=mlp_ratio)

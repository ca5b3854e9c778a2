"""Mix Transformer (SegFormer) with GeminiFusion in every block
(docs/model.md).

Shaped like mmseg's ``MixVisionTransformer``: one list of stages
(``layers``), each a patch embedding, its blocks and an output norm;
initialisation in ``init_weights``. Parameter names (layout version 2; see
:mod:`.gemini_mit_keys` for the released / version-1 names)::

    layers.{s}.patch_embed.proj.*          shared conv
    layers.{s}.patch_embed.norm.ln_{i}.*   per modality
    layers.{s}.blocks.{j}.norm1.ln_{i}.* / norm2.ln_{i}.*
    layers.{s}.blocks.{j}.attn.q.* / kv.* / proj.* / sr.*      shared
    layers.{s}.blocks.{j}.attn.norm.ln_{i}.*   per modality (sr > 1)
    layers.{s}.blocks.{j}.attn.fusion.*        the fusion layer
    layers.{s}.blocks.{j}.mlp.fc1.* / mlp.dwconv.dwconv.* / mlp.fc2.*
    layers.{s}.norm.ln_{i}.*               per modality
    layers.{s}.token_select.score_nets.{i}.{0,1}.*   K > 2 inputs only

With K = ``num_modalities`` > 2 inputs (the DeLiVER code line,
docs/model.md "K modalities"), the patch-embedding norms have K copies
(``ln_0..ln_{K-1}``), everything else two (the RGB stream and the stream of
the token-selected extra modalities), and each stage has a
:class:`TokenSelection`.
"""
import functools
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmengine.model.weight_init import trunc_normal_
from mmseg.registry import MODELS
from torch import Tensor

from ..layers import ModalityLayerNorm, build_fusion_layer, gelu_linear
from ..utils.modal_input import check_modal_input
from ..utils.token_maps import map_to_tokens, tokens_to_map
from .base import (DEFAULT_FUSION_CFG, GeminiFusionBackbone, block_fusion_cfgs,
                   resolve_fusion_cfg)
from .gemini_mit_keys import MiTKeyMap

MIT_ARCHS: Dict[str, dict] = {
    'b0': dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    'b1': dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2)),
    'b2': dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3)),
    'b3': dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3)),
    'b4': dict(embed_dims=(64, 128, 320, 512), depths=(3, 8, 27, 3)),
    'b5': dict(embed_dims=(64, 128, 320, 512), depths=(3, 6, 40, 3)),
}


def init_mit_weights(m: nn.Module) -> None:
    """The SegFormer/GeminiFusion initialisation of one module."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        fan_out //= m.groups
        nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class OverlapPatchEmbed(nn.Module):
    """Strided conv (shared) + per-modality LayerNorm.

    Shape: (M*B, C_in, H, W) -> tokens (M*B, H'*W', C), (H', W').
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int,
                 stride: int, num_modalities: int):
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels,
            embed_dims,
            kernel_size=patch_size,
            stride=stride,
            padding=patch_size // 2)
        self.norm = ModalityLayerNorm(embed_dims, num_modalities)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(map_to_tokens(x)), hw


class FusedEfficientAttention(nn.Module):
    """SegFormer's spatial-reduction attention with GeminiFusion before
    its output projection: ``proj(fusion(selfattn(x)))`` (docs/model.md).
    ``fusion_cfg=None``: no fusion.

    Shape: (M*B, N, C) -> (M*B, N, C).
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int,
                 num_modalities: int, fusion_cfg: Optional[dict]):
        super().__init__()
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(embed_dims, embed_dims)
        self.kv = nn.Linear(embed_dims, 2 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(
                embed_dims, embed_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = ModalityLayerNorm(embed_dims, num_modalities)
        self.fusion = build_fusion_layer(fusion_cfg, embed_dims,
                                         num_modalities)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        MB, N, C = x.shape
        heads = self.num_heads
        q = self.q(x).view(MB, N, heads, C // heads).transpose(1, 2)
        if self.sr_ratio > 1:
            kv_in = map_to_tokens(self.sr(tokens_to_map(x, hw)))
            kv_in = self.norm(kv_in)
        else:
            kv_in = x
        k, v = self.kv(kv_in).view(MB, -1, 2, heads,
                                   C // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(MB, N, C)
        return self.proj(self.fusion(out))


class DepthwiseConv(nn.Module):
    """3x3 depth-wise conv on tokens: (B, N, C) -> (B, N, C)."""

    def __init__(self, channels: int):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        return map_to_tokens(self.dwconv(tokens_to_map(x, hw)))


class MixFFN(nn.Module):
    """fc1 -> 3x3 depth-wise conv -> GELU -> fc2 (all shared); the GELU
    output is recomputed in the backward pass rather than stored
    (:func:`gelu_linear`).

    Shape: (M*B, N, C) -> (M*B, N, C).
    """

    def __init__(self, embed_dims: int, hidden_dims: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.dwconv = DepthwiseConv(hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        return gelu_linear(self.dwconv(self.fc1(x), hw), self.fc2)


class GeminiFusionMiTBlock(nn.Module):
    """One MiT block with fusion; per-modality norm1/norm2.

    ``x = x + drop_path(proj(gemini(selfattn(norm1(x)))))``, then
    ``x = x + drop_path(mlp(norm2(x)))``.

    Shape: (M*B, N, C) -> (M*B, N, C).
    """

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int,
                 mlp_ratio: int, drop_path: float, num_modalities: int,
                 fusion_cfg: Optional[dict]):
        super().__init__()
        self.norm1 = ModalityLayerNorm(embed_dims, num_modalities)
        self.attn = FusedEfficientAttention(embed_dims, num_heads, sr_ratio,
                                            num_modalities, fusion_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else \
            nn.Identity()
        self.norm2 = ModalityLayerNorm(embed_dims, num_modalities)
        self.mlp = MixFFN(embed_dims, embed_dims * mlp_ratio)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))


class TokenSelection(nn.Module):
    """Token selection of the DeLiVER code line (``PredictorConv`` +
    ``tokenselect`` of its backbone; docs/model.md "K modalities").

    Each extra modality ``i`` (inputs 1..K-1) is scored per token by its own
    net (depth-wise 3x3 conv, 1x1 conv to one channel, sigmoid) and scaled
    to ``t_i * score_i + t_i``; the fused stream is the element-wise maximum
    of the scaled tokens (``functools.reduce(torch.maximum)``, as the branch,
    so ties split the gradient the same way).

    The branch builds K score nets but uses only the first K - 1; the K-th
    never gets a gradient there (its training needs DDP
    ``find_unused_parameters``). It is kept so that released checkpoints
    load strictly, with ``requires_grad=False`` so that neither DDP nor the
    optimizer sees it.

    Args:
        embed_dims (int): Channels C.
        num_modalities (int): K input modalities (> 2).

    Shape:
        - Input: extra-modality tokens ((K-1)*B, H*W, C), modality-stacked,
          and the token grid (H, W).
        - Output: (scaled tokens ((K-1)*B, H*W, C), fused (B, H*W, C)).
    """

    def __init__(self, embed_dims: int, num_modalities: int):
        super().__init__()
        self.num_extra = num_modalities - 1
        self.score_nets = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(embed_dims, embed_dims, 3, 1, 1, groups=embed_dims),
                nn.Conv2d(embed_dims, 1, 1), nn.Sigmoid())
            for _ in range(num_modalities)
        ])
        # unused by the branch (see the class docstring): frozen, kept for
        # checkpoint compatibility
        self.score_nets[-1].requires_grad_(False)

    def init_weights(self) -> None:
        """The branch's top-level initialisation, which (unlike its MiT
        init) does not divide the conv fan-out by the groups: the
        depth-wise conv gets std sqrt(2 / (9 * C)); biases zero. ImageNet
        MiT weights overwrite every other conv, so this quirk survives only
        here (docs/model.md "K modalities")."""
        for m in self.score_nets.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, hw: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
        scaled = []
        for t, net in zip(x.chunk(self.num_extra), self.score_nets):
            score = map_to_tokens(net(tokens_to_map(t, hw)))
            scaled.append(t * score + t)
        return torch.cat(scaled), functools.reduce(torch.maximum, scaled)


class MiTStage(nn.Module):
    """One MiT stage: overlapping patch embedding, blocks, output norm.

    With K = ``num_inputs`` > 2 (docs/model.md "K modalities") the patch
    embedding sees K modalities, the blocks two streams: the first input
    (RGB) and the token selection of the other K - 1; the next stage's
    input is then the RGB output and, for each extra modality, its scaled
    pre-block tokens plus stream 1's output.

    ``num_modalities`` is the number of streams of the blocks and the
    output norm (2), ``num_inputs`` the number of modalities into the patch
    embedding (K; defaults to ``num_modalities``). ``forward(x, carry)``
    skips the next stage's input when ``carry`` is False (the last stage).
    ``fusion_cfgs``: the fusion config of each block (None: no fusion).

    Shape: (K*B, C_in, H, W) -> (outputs (2*B, C, H', W'), next stage's
    input (K*B, C, H', W'); with K = 2 the outputs themselves).
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 patch_size: int,
                 stride: int,
                 depth: int,
                 num_heads: int,
                 sr_ratio: int,
                 mlp_ratio: int,
                 drop_path_rates: Sequence[float],
                 num_modalities: int,
                 fusion_cfgs: Sequence[Optional[dict]],
                 num_inputs: Optional[int] = None):
        super().__init__()
        num_inputs = num_inputs or num_modalities
        self.patch_embed = OverlapPatchEmbed(in_channels, embed_dims,
                                             patch_size, stride, num_inputs)
        if num_inputs > num_modalities:
            self.token_select = TokenSelection(embed_dims, num_inputs)
        self.blocks = nn.ModuleList([
            GeminiFusionMiTBlock(embed_dims, num_heads, sr_ratio, mlp_ratio,
                                 drop_path_rates[j], num_modalities,
                                 fusion_cfgs[j]) for j in range(depth)
        ])
        self.norm = ModalityLayerNorm(embed_dims, num_modalities)

    def forward(self, x: Tensor, carry: bool = True) -> Tuple[Tensor, Tensor]:
        x, hw = self.patch_embed(x)
        token_select = getattr(self, 'token_select', None)
        if token_select is not None:
            B = x.shape[0] // (token_select.num_extra + 1)
            extra, fused = token_select(x[B:], hw)
            x = torch.cat([x[:B], fused])
        for block in self.blocks:
            x = block(x, hw)
        out = tokens_to_map(self.norm(x), hw)
        if token_select is None or not carry:
            return out, out
        extra = tokens_to_map(extra, hw).unflatten(0, (-1, B)) + out[None, B:]
        return out, torch.cat([out[:B], extra.flatten(0, 1)])


def _fits(side: int, sr_ratios: Sequence[int]) -> bool:
    """Whether an image side of ``side`` px gives every stage a map at
    least as large as its spatial-reduction kernel (patch embeddings:
    kernel 7 stride 4 padding 3, then kernel 3 stride 2 padding 1)."""
    for s, ratio in enumerate(sr_ratios):
        side = (side - 1) // 4 + 1 if s == 0 else (side - 1) // 2 + 1
        if side < ratio:
            return False
    return True


@MODELS.register_module()
class GeminiFusionMiT(GeminiFusionBackbone):
    """GeminiFusion Mix Transformer (SegFormer MiT-B0..B5) for RGB-D input,
    or for RGB + K - 1 other modalities (the DeLiVER code line).

    All convolutions and linear layers are shared by the modalities, which
    run as one batch of size M*B; LayerNorms are per modality
    (docs/model.md). With ``num_modalities=K > 2`` the blocks still fuse two
    streams: RGB and the token selection of the other K - 1 inputs
    (:class:`TokenSelection`, docs/model.md "K modalities"); only the
    patch-embedding norms have K copies.

    Args:
        arch (str | dict): 'b0'..'b5', or a dict with ``embed_dims`` and
            ``depths`` (4 entries each) for a custom size.
        in_channels (int): Input channels, 3 per modality. Defaults to 6.
        num_modalities (int): K input modalities, RGB first, K >= 2.
            Defaults to 2.
        num_heads (Sequence[int]): Self-attention heads per stage.
        sr_ratios (Sequence[int]): Spatial-reduction ratios per stage.
        mlp_ratio (int): MixFFN expansion. Defaults to 4.
        drop_path_rate (float): Stochastic depth, growing linearly from 0
            over all blocks to this value.
        fusion_cfg (dict | None): The fusion layer of every block, a module
            registered in mmseg's ``MODELS`` (``embed_dims`` and
            ``num_modalities`` are filled in). Defaults to
            ``dict(type='GeminiFusion', num_heads=8)``; None: no fusion.
        fusion_num_heads (int, optional): Deprecated; sets
            ``fusion_cfg['num_heads']``.
        fusion_last_k (int, optional): Fusion layers only in the last k of
            the ``sum(depths)`` blocks, counted over all stages from the end
            (the paper's Table 8); the other blocks have none (and no
            fusion parameters). None (default): every block, the published
            model; 0: the shared backbone with per-modality norms only.
        out_indices (Sequence[int]): Stages to return.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained',
            checkpoint=...)`` (NVlabs ``mit_b*.pth``, mmseg MiT, or a
            GeminiFusion checkpoint; optional ``load_modality_norms`` /
            ``prefix`` keys; see :mod:`geminifusion_mmseg.checkpoints`).

    Attributes:
        num_streams (int): Streams in the blocks and the outputs: 2 (RGB
            and depth, or RGB and the fused extra modalities).

    Shape:
        - Input: (B, 3 * K, H, W): channels [0:3] rgb, then 3 per other
          modality (e.g. [3:6] depth).
        - Output: tuple of (2*B, C_s, ceil(H/r_s), ceil(W/r_s)) for the
          selected stages, r_s = 4, 8, 16, 32; rows [0:B] are rgb, rows
          [B:2B] the second stream.
    """
    arch_zoo = MIT_ARCHS
    key_map = MiTKeyMap
    _version = MiTKeyMap.version

    def __init__(self,
                 arch: Union[str, dict] = 'b0',
                 in_channels: int = 6,
                 num_modalities: int = 2,
                 num_heads: Sequence[int] = (1, 2, 5, 8),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 mlp_ratio: int = 4,
                 drop_path_rate: float = 0.1,
                 fusion_cfg: Optional[dict] = DEFAULT_FUSION_CFG,
                 fusion_num_heads: Optional[int] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 init_cfg=None,
                 fusion_last_k: Optional[int] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch.lower() not in MIT_ARCHS:
                raise ValueError(f'GeminiFusionMiT: unknown arch {arch!r}; '
                                 f'choose one of {sorted(MIT_ARCHS)} or pass '
                                 'a dict(embed_dims=..., depths=...)')
            arch = MIT_ARCHS[arch.lower()]
        embed_dims, depths = tuple(arch['embed_dims']), tuple(arch['depths'])
        if len(embed_dims) != 4 or len(depths) != 4:
            raise ValueError('GeminiFusionMiT: arch needs 4 embed_dims and 4 '
                             f'depths, got {embed_dims} and {depths}')
        if num_modalities < 2:
            raise ValueError('GeminiFusionMiT fuses RGB with at least one '
                             'other modality: num_modalities must be >= 2, '
                             f'got {num_modalities}')
        if in_channels != 3 * num_modalities:
            raise ValueError(
                f'GeminiFusionMiT: in_channels={in_channels}, but '
                f'num_modalities={num_modalities} need '
                f'{3 * num_modalities} channels (3 per modality). Make the '
                "config's modalities, the backbone's in_channels and the data "
                "preprocessor's mean/std agree.")
        self.in_channels = in_channels
        self.num_modalities = num_modalities
        self.num_streams = 2
        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = tuple(num_heads)
        self.sr_ratios = tuple(sr_ratios)
        self.mlp_ratio = mlp_ratio
        self.drop_path_rate = drop_path_rate
        self.fusion_cfg = resolve_fusion_cfg(fusion_cfg, fusion_num_heads,
                                             type(self).__name__)
        self.out_indices = tuple(out_indices)
        self.fusion_last_k = fusion_last_k
        fusion_cfgs = block_fusion_cfgs(self.fusion_cfg, depths, fusion_last_k,
                                        type(self).__name__)

        dpr = torch.linspace(
            0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        stage_in = 3
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            start = sum(depths[:s])
            self.layers.append(
                MiTStage(
                    stage_in,
                    embed_dims[s],
                    patch,
                    stride,
                    depths[s],
                    self.num_heads[s],
                    self.sr_ratios[s],
                    mlp_ratio,
                    dpr[start:start + depths[s]],
                    self.num_streams,
                    fusion_cfgs[s],
                    num_inputs=num_modalities))
            stage_in = embed_dims[s]

    def _init_default_weights(self) -> None:
        """The SegFormer initialisation (:func:`init_mit_weights`) of every
        module; fusion layers and token selections by their own
        ``init_weights``."""
        self.apply(init_mit_weights)
        for stage in self.layers:
            for block in stage.blocks:
                if hasattr(block.attn.fusion, 'init_weights'):
                    block.attn.fusion.init_weights()
            if hasattr(stage, 'token_select'):
                stage.token_select.init_weights()

    @property
    def min_input_size(self) -> int:
        """The smallest image side this backbone accepts: each stage's
        map must be at least as large as its spatial-reduction kernel
        (``sr_ratios``; 29 px for the default (8, 4, 2, 1))."""
        side = 1
        while not _fits(side, self.sr_ratios):
            side += 1
        return side

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = check_modal_input(x, self.in_channels, self.num_modalities,
                              type(self).__name__)
        if not torch.compiler.is_compiling():  # no shape guard when traced
            h, w = x.shape[-2:]
            if not (_fits(int(h), self.sr_ratios)
                    and _fits(int(w), self.sr_ratios)):
                raise ValueError(
                    f'{type(self).__name__}: the input is {h}x{w} (HxW), '
                    f'smaller than the {self.min_input_size} px per side '
                    f'that sr_ratios={self.sr_ratios} need (each stage\'s '
                    'map must be at least its spatial-reduction kernel). '
                    'Resize or pad the images to at least that size (the '
                    'crop size and MultiModalPad of the training pipeline, '
                    'the Resize of the test pipeline), or lower sr_ratios.')
        outs: List[Tensor] = []
        for s, stage in enumerate(self.layers):
            # the branch carries nothing past the last stage
            out, x = stage(x, carry=s < len(self.layers) - 1)
            if s in self.out_indices:
                outs.append(out)
        return tuple(outs)

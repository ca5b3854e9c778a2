"""Swin Transformer backbone with GeminiFusion (docs/model.md).

One Swin Transformer (window attention with relative position bias,
shifted windows, patch merging) is shared by the two modalities; only the
patch-embedding norm and the four stage output norms are per modality, and
every block fuses the modalities with a :class:`GeminiFusion` layer right
after the window attention's output projection::

    s = x
    h = proj(window_attention(norm1(x)))     # shared weights
    h = gemini(h)                            # cross-modal, pixel-wise
    x = s + drop_path(h)
    x = x + drop_path(mlp(norm2(x)))

The modalities travel as ONE modality-stacked batch of size M * B (rows
``[0:B]`` rgb, ``[B:2B]`` depth) through the shared layers, so every Linear
runs once instead of once per modality; only :class:`ModalityLayerNorm` and
:class:`GeminiFusion` look at the modality axis.

Behaviour reproduced from the released code (JiaDingCN/GeminiFusion,
``models/swin_transformer.py``, itself the Swin detection/segmentation
backbone):

* the input is zero-padded right/bottom to a multiple of the patch size;
* in every block the normed feature map is zero-padded right/bottom to a
  multiple of the window size (padded tokens are NOT masked, as in the
  release) and cropped back after the attention; the shifted blocks
  (odd index, shift ``window_size // 2``) are shifted even when the map is
  smaller than one window, with the release's ``-100`` region mask;
* patch merging zero-pads odd sizes, so stage i has size
  ``ceil(H / 2**(i + 2))``, concatenates the 2x2 neighbours in the order
  (0,0), (1,0), (0,1), (1,1), then applies norm and reduction;
* LayerNorms inside the blocks and in the patch merging are shared
  (``eps=1e-5``); the per-modality ones use ``eps=1e-6``.

Shaped like mmseg's ``SwinTransformer``: one list of stages (``layers``),
initialisation in ``init_weights``, the arch settings on ``self``.
Parameter names mirror the released checkpoints with the
``module.encoder.body.`` prefix and the ``.module`` wrappers removed, and the
block's fusion parameters grouped under ``fusion.`` (the maps are in
:mod:`.gemini_swin_keys`)::

    released (after ``module.encoder.body.``) -> here
    patch_embed.proj.module.*            -> patch_embed.proj.*
    patch_embed.norm.ln_{i}.*            -> patch_embed.norm.ln_{i}.*
    layers.{l}.blocks.{j}. (block prefix, "B." below)
    B.norm1.module.* / B.norm2.module.*  -> B.norm1.* / B.norm2.*
    B.attn.module.qkv.* / .proj.*        -> B.attn.qkv.* / B.attn.proj.*
    B.attn.module.relative_position_bias_table
                                         -> B.attn.relative_position_bias_table
    B.attn.module.relative_position_index (buffer)
                                         -> B.attn.relative_position_index
    B.mlp.fc1.module.* / fc2.module.*    -> B.mlp.fc1.* / B.mlp.fc2.*
    B.cross_attn_0_to_1.*                -> B.fusion.cross_attn_0_to_1.*
    B.cross_attn_1_to_0.*                -> B.fusion.cross_attn_1_to_0.*
    B.relation_judger.0.fc{1,2}.*        -> B.fusion.relation_judger.0.*
    B.k_noise.weight / B.v_noise.weight  -> B.fusion.k_noise.weight / ...
    layers.{l}.downsample.module.reduction.weight
                                      -> layers.{l}.downsample.reduction.weight
    layers.{l}.downsample.module.norm.*  -> layers.{l}.downsample.norm.*
    norm{l}.ln_{i}.*                     -> norm{l}.ln_{i}.*

Shapes (C_l = embed_dims * 2**l, nH_l heads, window ws): qkv (3C, C),
proj (C, C), relative_position_bias_table ((2ws-1)**2, nH),
relative_position_index (ws**2, ws**2), mlp.fc1 (4C, C), mlp.fc2 (C, 4C),
cross_attn_*.in_proj_weight (3C, C), relation_judger.0.fc1 (C, 2C),
k_noise / v_noise (2, C), downsample.reduction (2C, 4C), downsample.norm
(4C,), patch_embed.proj (C_0, 3, 4, 4).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model.weight_init import trunc_normal_
from mmseg.registry import MODELS
from torch import Tensor

from ..layers import ModalityLayerNorm, build_fusion_layer, gelu_linear
from ..utils.modal_input import check_modal_input
from ..utils.token_maps import map_to_tokens
from .base import (DEFAULT_FUSION_CFG, GeminiFusionBackbone, block_fusion_cfgs,
                   resolve_fusion_cfg)
from .gemini_swin_keys import SwinKeyMap

# The released mask value for token pairs from different shifted regions.
SHIFT_MASK_VALUE = -100.0


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, window_size**2, C), windows in row-major
    order per image (H and W multiples of ``window_size``)."""
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size,
               C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size,
                                               C)


def window_reverse(windows: Tensor, window_size: int, H: int,
                   W: int) -> Tensor:
    """Inverse of :func:`window_partition`: -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window_size, W // window_size, window_size,
                     window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def shift_window_mask(Hp: int,
                      Wp: int,
                      window_size: int,
                      shift_size: int,
                      device=None,
                      dtype=torch.float32) -> Tensor:
    """Attention mask of the shifted windows, as in the release.

    The (Hp, Wp) padded map is cut into 3 x 3 regions (rows/columns
    ``[0, Hp - ws)``, ``[Hp - ws, Hp - shift)``, ``[Hp - shift, Hp)``); after
    the cyclic shift, tokens of one window that come from different regions
    must not attend to each other: they get ``-100``.

    Returns:
        Tensor: (nW, ws * ws, ws * ws) with values 0 / -100.
    """
    h = torch.arange(Hp, device=device)
    w = torch.arange(Wp, device=device)
    h_region = (h >= Hp - window_size).long() + (h >= Hp - shift_size).long()
    w_region = (w >= Wp - window_size).long() + (w >= Wp - shift_size).long()
    region = h_region[:, None] * 3 + w_region[None, :]  # (Hp, Wp)
    region = window_partition(region[None, :, :, None], window_size)[..., 0]
    differ = region.unsqueeze(1) != region.unsqueeze(2)  # (nW, N, N)
    mask = torch.zeros(differ.shape, device=device, dtype=dtype)
    return mask.masked_fill_(differ, SHIFT_MASK_VALUE)


class WindowMSA(nn.Module):
    """Window multi-head self-attention with relative position bias.

    Evaluated with :func:`torch.nn.functional.scaled_dot_product_attention`;
    the relative position bias (and, for shifted windows, the region mask)
    is passed as a float ``attn_mask``, which is exactly the released
    ``softmax(q k^T * scale + bias + mask) v``.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Attention heads.
        window_size (int): Window side.
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int):
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (embed_dims // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        # Same index as the release (kept as a persistent buffer, since the
        # released checkpoints carry it).
        coords = torch.stack(
            torch.meshgrid(
                torch.arange(window_size),
                torch.arange(window_size),
                indexing='ij')).flatten(1)  # (2, N)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
        rel = rel + (window_size - 1)
        index = rel[:, :, 0] * (2 * window_size - 1) + rel[:, :, 1]
        self.register_buffer('relative_position_index', index.contiguous())
        self.qkv = nn.Linear(embed_dims, 3 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> Tensor:
        """(nH, N, N) bias gathered from the table."""
        N = self.window_size**2
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)]
        return bias.view(N, N, self.num_heads).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            x (Tensor): (B * nW, N, C) windows, batch-major.
            mask (Tensor, optional): (nW, N, N) shift mask or None.

        Returns:
            Tensor: (B * nW, N, C).
        """
        BW, N, C = x.shape
        nH = self.num_heads
        nW = 1 if mask is None else mask.shape[0]
        B = BW // nW
        # Windows and heads share SDPA's head axis, so that the (nW, nH)
        # mask broadcasts over the batch without being copied per sample.
        qkv = self.qkv(x).view(B, nW, N, 3, nH, C // nH)
        q, k, v = qkv.permute(3, 0, 1, 4, 2,
                              5).reshape(3, B, nW * nH, N, C // nH).unbind(0)
        bias = self.relative_position_bias().to(q.dtype)
        if mask is None:
            attn_mask = bias.unsqueeze(0)
        else:
            attn_mask = bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)
            attn_mask = attn_mask.reshape(1, nW * nH, N, N)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, scale=self.scale)
        out = out.view(B, nW, nH, N, C // nH).transpose(2, 3)
        return self.proj(out.reshape(BW, N, C))


class SwinMLP(nn.Module):
    """fc1 -> GELU -> fc2 (names as the released ``mlp.fc1`` / ``mlp.fc2``);
    the GELU output is recomputed in the backward pass (:func:`gelu_linear`).

    Shape: (..., C) -> (..., C).
    """

    def __init__(self, embed_dims: int, hidden_dims: int):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: Tensor) -> Tensor:
        return gelu_linear(self.fc1(x), self.fc2)


class GeminiSwinBlock(nn.Module):
    """Swin block with GeminiFusion after the window attention.

    Args:
        embed_dims (int): Channels C.
        num_heads (int): Window-attention heads.
        window_size (int): Window side.
        shift (bool): Shifted windows (shift ``window_size // 2``).
        drop_path_rate (float): Stochastic depth of both residual branches.
        fusion_cfg (dict | None): The fusion layer
            (:func:`build_fusion_layer`); None: no fusion.
        num_modalities (int): M.
        mlp_ratio (float): MLP hidden ratio. Defaults to 4.

    Shape:
        x: (M * B, H * W, C) modality-stacked -> same.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 shift: bool,
                 drop_path_rate: float,
                 fusion_cfg: Optional[dict],
                 num_modalities: int,
                 mlp_ratio: float = 4.):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowMSA(embed_dims, num_heads, window_size)
        self.fusion = build_fusion_layer(fusion_cfg, embed_dims,
                                         num_modalities)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = SwinMLP(embed_dims, int(embed_dims * mlp_ratio))
        # Per-row masks: each modality of each sample is dropped
        # independently, as the release's per-modality DropPath passes.
        self.drop_path = DropPath(
            drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                shift_mask: Optional[Tensor]) -> Tensor:
        MB, L, C = x.shape
        H, W = hw_shape
        ws, shift = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(MB, H, W, C)
        pad_b, pad_r = (ws - H % ws) % ws, (ws - W % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        Hp, Wp = H + pad_b, W + pad_r
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = self.attn(
            window_partition(x, ws), shift_mask if shift else None)
        x = window_reverse(windows, ws, Hp, Wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :H, :W, :].reshape(MB, L, C)
        x = shortcut + self.drop_path(self.fusion(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 patch merging: (B, H*W, C) -> (B, ceil(H/2)*ceil(W/2), 2C).

    Odd sizes are zero-padded right/bottom; neighbours are concatenated in
    the release's order (0,0), (1,0), (0,1), (1,1); then ``norm`` (shared,
    eps 1e-5) and ``reduction`` (Linear 4C -> 2C, no bias).
    """

    def __init__(self, embed_dims: int):
        super().__init__()
        self.reduction = nn.Linear(4 * embed_dims, 2 * embed_dims, bias=False)
        self.norm = nn.LayerNorm(4 * embed_dims)

    def forward(self, x: Tensor,
                hw_shape: Tuple[int, int]) -> Tuple[Tensor, Tuple[int, int]]:
        B, L, C = x.shape
        H, W = hw_shape
        x = x.view(B, H, W, C)
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([
            x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2,
                                                                    1::2]
        ],
                      dim=-1)
        out_hw = (x.shape[1], x.shape[2])
        x = self.reduction(self.norm(x.reshape(B, -1, 4 * C)))
        return x, out_hw


class GeminiSwinStage(nn.Module):
    """One stage: ``depth`` blocks (even: regular, odd: shifted windows) and
    an optional patch merging (``downsample``).

    ``fusion_cfgs``: the fusion config of each block (None: no fusion).
    forward returns ``(x_out, out_hw, x_next, next_hw)``: the stage output
    before downsampling and the input of the next stage.
    """

    def __init__(self, embed_dims: int, depth: int, num_heads: int,
                 window_size: int, drop_path_rates: Sequence[float],
                 fusion_cfgs: Sequence[Optional[dict]], num_modalities: int,
                 downsample: bool):
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList([
            GeminiSwinBlock(embed_dims, num_heads, window_size, i % 2 == 1,
                            drop_path_rates[i], fusion_cfgs[i], num_modalities)
            for i in range(depth)
        ])
        self.downsample = PatchMerging(embed_dims) if downsample else None

    def forward(self, x: Tensor, hw_shape: Tuple[int, int]):
        H, W = hw_shape
        ws = self.window_size
        shift_mask = None
        if len(self.blocks) > 1:
            shift_mask = shift_window_mask(
                math.ceil(H / ws) * ws,
                math.ceil(W / ws) * ws, ws, ws // 2, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, hw_shape, shift_mask)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_hw = self.downsample(x, hw_shape)
        return x, hw_shape, x_down, down_hw


class GeminiPatchEmbed(nn.Module):
    """Patch embedding: pad to the patch multiple, Conv(k=s=patch) shared,
    then a per-modality LayerNorm (``norm.ln_{i}``, eps 1e-6).

    Shape: (M * B, 3, H, W) -> ((M * B, Hp * Wp, C), (Hp, Wp)).
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int,
                 num_modalities: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(
            in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = ModalityLayerNorm(embed_dims, num_modalities, eps=1e-6)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            x = F.pad(x, (0, (p - W % p) % p, 0, (p - H % p) % p))
        x = self.proj(x)
        hw_shape = (x.shape[2], x.shape[3])
        return self.norm(map_to_tokens(x)), hw_shape


@MODELS.register_module()
class GeminiFusionSwin(GeminiFusionBackbone):
    """GeminiFusion Swin Transformer backbone for RGB-D (GeminiFusion, ICML
    2024).

    The weights of one Swin Transformer are shared by the modalities; the
    patch-embedding norm and the four output norms are per modality
    (:class:`ModalityLayerNorm`), and each block ends its attention branch
    with a :class:`GeminiFusion` layer (see the module docstring for the
    exact block, the padding rules and the mapping to the released
    checkpoint names).

    Args:
        arch (str): 'tiny' (96, [2, 2, 6, 2], heads [3, 6, 12, 24],
            window 7), 'small' (96, [2, 2, 18, 2], [3, 6, 12, 24], 7),
            'large' (192, [2, 2, 18, 2], [6, 12, 24, 48], 7, pretrained at
            224) or 'large-384' (as 'large', window 12, pretrained at 384).
            A dict with ``embed_dims``, ``depths``, ``num_heads`` (and
            optionally ``window_size``, ``pretrain_img_size``) gives a custom
            size. Defaults to 'tiny'.
        in_channels (int): Input channels, 3 per modality. Defaults to 6.
        num_modalities (int): Must be 2. Defaults to 2.
        pretrain_img_size (int, optional): Image size of the ImageNet
            pretraining (informative; no absolute position embedding is
            used). Defaults to the arch's.
        window_size (int, optional): Overrides the arch's window size.
        drop_path_rate (float): Stochastic depth, growing linearly from 0 to
            this over all blocks. Defaults to 0.2.
        fusion_cfg (dict | None): The fusion layer of every block, a module
            registered in mmseg's ``MODELS`` (``embed_dims`` and
            ``num_modalities`` are filled in). Defaults to
            ``dict(type='GeminiFusion', num_heads=8)`` (the release); None:
            no fusion.
        fusion_num_heads (int, optional): Deprecated; sets
            ``fusion_cfg['num_heads']``.
        out_indices (Sequence[int]): Stages whose (normed) outputs are
            returned. Defaults to (0, 1, 2, 3).
        fusion_last_k (int, optional): Fusion layers only in the last k of
            the ``sum(depths)`` blocks, counted over all stages from the end
            (the paper's Table 8); the other blocks have none (and no
            fusion parameters). None (default): every block, the published
            model; 0: the shared backbone with per-modality norms only.
        init_cfg (dict, optional): mmengine init config, applied after the
            default initialisation; ``dict(type='Pretrained',
            checkpoint=PATH)`` reads Microsoft or mmpretrain Swin ImageNet
            weights, or a GeminiFusion checkpoint (fusion layers stay fresh
            for ImageNet weights; optional ``load_modality_norms`` /
            ``prefix`` keys; see :mod:`geminifusion_mmseg.checkpoints`).

    Shape:
        - Input: (B, in_channels, H, W); channels [3m:3m+3] are modality m
          (0 = rgb, 1 = depth).
        - Output: tuple of (M * B, C_i, ceil(H / 2**(i+2)),
          ceil(W / 2**(i+2))) for i in ``out_indices``, modality-stacked
          (rows [0:B] rgb, [B:2B] depth), C_i = embed_dims * 2**i.
    """
    arch_zoo = {
        'tiny':
        dict(
            embed_dims=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            pretrain_img_size=224),
        'small':
        dict(
            embed_dims=96,
            depths=[2, 2, 18, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            pretrain_img_size=224),
        'large':
        dict(
            embed_dims=192,
            depths=[2, 2, 18, 2],
            num_heads=[6, 12, 24, 48],
            window_size=7,
            pretrain_img_size=224),
        'large-384':
        dict(
            embed_dims=192,
            depths=[2, 2, 18, 2],
            num_heads=[6, 12, 24, 48],
            window_size=12,
            pretrain_img_size=384),
    }
    patch_size = 4
    channels_per_modality = 3
    key_map = SwinKeyMap
    _version = SwinKeyMap.version

    def __init__(self,
                 arch='tiny',
                 in_channels: int = 6,
                 num_modalities: int = 2,
                 pretrain_img_size: Optional[int] = None,
                 window_size: Optional[int] = None,
                 drop_path_rate: float = 0.2,
                 fusion_cfg: Optional[dict] = DEFAULT_FUSION_CFG,
                 fusion_num_heads: Optional[int] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 init_cfg=None,
                 fusion_last_k: Optional[int] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in self.arch_zoo:
                raise ValueError(
                    f'GeminiFusionSwin: unknown arch {arch!r}; valid archs '
                    f'are {sorted(self.arch_zoo)}')
            arch_cfg = dict(self.arch_zoo[arch])
        elif isinstance(arch, dict):
            missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
            if missing:
                raise ValueError(f'GeminiFusionSwin: custom arch {arch} '
                                 f'lacks the keys {sorted(missing)}')
            arch_cfg = dict(window_size=7, pretrain_img_size=224)
            arch_cfg.update(arch)
        else:
            raise ValueError(f'GeminiFusionSwin: arch must be a name or a '
                             f'dict, got {arch!r}')
        if num_modalities != 2:
            raise ValueError(
                f'GeminiFusionSwin supports exactly 2 modalities (rgb, '
                f'depth), got num_modalities={num_modalities}; more '
                'modalities (the DeLiVER code line, which has no Swin) need '
                "type='GeminiFusionMiT'")
        if in_channels != self.channels_per_modality * num_modalities:
            raise ValueError(
                f'GeminiFusionSwin: in_channels={in_channels} must be '
                f'{self.channels_per_modality} * num_modalities = '
                f'{self.channels_per_modality * num_modalities}')
        depths = list(arch_cfg['depths'])
        num_heads = list(arch_cfg['num_heads'])
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError('GeminiFusionSwin: depths and num_heads need 4 '
                             f'stages, got {depths} and {num_heads}')
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ValueError(f'GeminiFusionSwin: out_indices {out_indices} '
                             f'must be a non-empty subset of (0, 1, 2, 3)')

        self.arch = arch
        self.in_channels = in_channels
        self.num_modalities = num_modalities
        self.embed_dims = arch_cfg['embed_dims']
        self.depths = depths
        self.num_heads = num_heads
        self.window_size = window_size or arch_cfg['window_size']
        self.pretrain_img_size = (
            pretrain_img_size or arch_cfg['pretrain_img_size'])
        self.drop_path_rate = drop_path_rate
        self.fusion_cfg = resolve_fusion_cfg(fusion_cfg, fusion_num_heads,
                                             type(self).__name__)
        self.out_indices = out_indices
        self.fusion_last_k = fusion_last_k
        fusion_cfgs = block_fusion_cfgs(self.fusion_cfg, depths, fusion_last_k,
                                        type(self).__name__)
        self.num_features = [self.embed_dims * 2**i for i in range(4)]

        self.patch_embed = GeminiPatchEmbed(self.channels_per_modality,
                                            self.embed_dims, self.patch_size,
                                            num_modalities)
        dpr = torch.linspace(
            0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            self.layers.append(
                GeminiSwinStage(
                    self.num_features[i],
                    depth,
                    heads,
                    self.window_size,
                    dpr[start:start + depth],
                    fusion_cfgs[i],
                    num_modalities,
                    downsample=i < 3))
        for i in out_indices:
            self.add_module(
                f'norm{i}',
                ModalityLayerNorm(
                    self.num_features[i], num_modalities, eps=1e-6))

    def _init_default_weights(self) -> None:
        """Swin initialisation: Linear weights trunc-normal(0.02) and zero
        biases, LayerNorms 1 / 0, relative position bias tables
        trunc-normal(0.02); the fusion layers by their own
        ``init_weights`` (GeminiFusion: as the release)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, WindowMSA):
                trunc_normal_(m.relative_position_bias_table, std=0.02)
        for stage in self.layers:
            for block in stage.blocks:
                if hasattr(block.fusion, 'init_weights'):
                    block.fusion.init_weights()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = check_modal_input(x, self.in_channels, self.num_modalities,
                              type(self).__name__)
        x, hw_shape = self.patch_embed(x)
        MB = x.shape[0]
        outs: List[Tensor] = []
        for i, stage in enumerate(self.layers):
            out, out_hw, x, hw_shape = stage(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(
                    out.view(MB, *out_hw,
                             self.num_features[i]).permute(0, 3, 1,
                                                           2).contiguous())
            if i >= max(self.out_indices):
                break
        return tuple(outs)

"""The published MiT (SegFormer) GeminiFusion encoder, literally.

Written from docs/model.md and the structure of the release
(JiaDingCN/GeminiFusion ``models/mix_transformer.py``, ``models/modules.py``):

* the modalities travel as a Python list ``[x_rgb, x_depth]`` and every
  shared layer runs once per modality (``ModuleParallel``);
* per-modality LayerNorms (eps 1e-6) are ``ln_0`` / ``ln_1`` of a
  ``LayerNormParallel``;
* the GeminiFusion layer (:class:`LiteralGeminiFusion`, per-sample loop over
  ``nn.MultiheadAttention``) sits inside the attention, between the
  self-attention and its output projection ``proj``; its parameters are
  registered directly on the attention module, as in the release.

Parameter names are exactly those of a released checkpoint's encoder with
``module.encoder.`` stripped, e.g. ``patch_embed1.proj.module.weight``,
``block1.0.norm1.ln_0.weight``, ``block1.0.attn.q.module.weight``,
``block1.0.attn.cross_attn_0_to_1.in_proj_weight``,
``block1.0.attn.relation_judger.0.fc1.weight``,
``block1.0.mlp.dwconv.dwconv.weight``, ``norm1.ln_0.weight``.

A test oracle (and the benchmark's literal baseline): slow on purpose,
never used by the plugin's models.
"""
import math
from typing import List, Sequence

import torch
import torch.nn as nn
from mmcv.cnn.bricks.drop import DropPath

from .literal_fusion import LiteralGeminiFusion

NUM_PARALLEL = 2
FUSION_NAMES = ('cross_attn_0_to_1', 'cross_attn_1_to_0', 'relation_judger',
                'k_noise', 'v_noise')


def _init_weights(m: nn.Module) -> None:
    """The release's initialisation (SegFormer's)."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        fan_out //= m.groups
        m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            m.bias.data.zero_()


class ModuleParallel(nn.Module):
    """One shared module applied to each modality of a list."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.module(x) for x in xs]


class LayerNormParallel(nn.Module):
    """One LayerNorm per modality: ``ln_0``, ``ln_1`` (eps 1e-6)."""

    def __init__(self, num_features: int):
        super().__init__()
        for i in range(NUM_PARALLEL):
            setattr(self, f'ln_{i}', nn.LayerNorm(num_features, eps=1e-6))

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        return [getattr(self, f'ln_{i}')(x) for i, x in enumerate(xs)]


class DWConv(nn.Module):
    """Shared 3x3 depth-wise conv on tokens (B, N, C) of an H x W map."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x, H, W):
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, H, W)
        return self.dwconv(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """fc1 -> dwconv -> GELU -> fc2 (Mix-FFN), shared, once per modality."""

    def __init__(self,
                 in_features: int,
                 hidden_features: int,
                 drop: float = 0.):
        super().__init__()
        self.fc1 = ModuleParallel(nn.Linear(in_features, hidden_features))
        self.dwconv = DWConv(hidden_features)
        self.act = ModuleParallel(nn.GELU())
        self.fc2 = ModuleParallel(nn.Linear(hidden_features, in_features))
        self.drop = ModuleParallel(nn.Dropout(drop))

    def forward(self, xs, H, W):
        xs = self.fc1(xs)
        xs = [self.dwconv(x, H, W) for x in xs]
        xs = self.drop(self.act(xs))
        return self.drop(self.fc2(xs))


class Attention(LiteralGeminiFusion):
    """Efficient self-attention with spatial reduction, then GeminiFusion,
    then ``proj``.

    It IS a :class:`LiteralGeminiFusion` (so the fusion parameters sit
    directly under ``attn.`` as in the release) and adds the attention's own
    layers. The fusion's modules are moved after the attention's in the
    registration order, so the state dict lists keys in the release's order.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 sr_ratio: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 n_heads: int = 8):
        super().__init__(dim, num_heads=n_heads)
        assert dim % num_heads == 0, (dim, num_heads)
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.q = ModuleParallel(nn.Linear(dim, dim, bias=qkv_bias))
        self.kv = ModuleParallel(nn.Linear(dim, 2 * dim, bias=qkv_bias))
        self.attn_drop = ModuleParallel(nn.Dropout(attn_drop))
        self.proj = ModuleParallel(nn.Linear(dim, dim))
        self.proj_drop = ModuleParallel(nn.Dropout(proj_drop))
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = ModuleParallel(
                nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio))
            self.norm = LayerNormParallel(dim)
        for name in FUSION_NAMES:  # release order: fusion last
            self._modules[name] = self._modules.pop(name)
        self.apply(_init_weights)

    def self_attention(self, xs, H, W):
        """Per modality: softmax(q k^T * scale) v, heads merged (B, N, C)."""
        B, N, C = xs[0].shape
        h = self.num_heads
        q = [
            t.reshape(B, N, h, C // h).permute(0, 2, 1, 3) for t in self.q(xs)
        ]
        if self.sr_ratio > 1:
            src = [x.permute(0, 2, 1).reshape(B, C, H, W) for x in xs]
            src = self.sr(src)
            src = [t.reshape(B, C, -1).permute(0, 2, 1) for t in src]
            src = self.norm(src)
        else:
            src = xs
        kv = [
            t.reshape(B, -1, 2, h, C // h).permute(2, 0, 3, 1, 4)
            for t in self.kv(src)
        ]
        attn = [(q_ @ kv_[0].transpose(-2, -1)) * self.scale
                for q_, kv_ in zip(q, kv)]
        attn = self.attn_drop([a.softmax(dim=-1) for a in attn])
        return [(a @ kv_[1]).transpose(1, 2).reshape(B, N, C)
                for a, kv_ in zip(attn, kv)]

    def forward(self, xs, H, W):
        xs = self.self_attention(xs, H, W)
        xs = super().forward(xs)  # LiteralGeminiFusion: per-sample MHA loop
        return self.proj_drop(self.proj(xs))


class Block(nn.Module):
    """x + dp(proj(gemini(selfattn(norm1(x))))), x + dp(mlp(norm2(x)))."""

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 sr_ratio: int,
                 drop_path: float = 0.,
                 drop: float = 0.,
                 n_heads: int = 8):
        super().__init__()
        self.norm1 = LayerNormParallel(dim)
        self.attn = Attention(
            dim, num_heads, sr_ratio, proj_drop=drop, n_heads=n_heads)
        # one DropPath per modality call: independent masks, as the release
        self.drop_path = ModuleParallel(
            DropPath(drop_path) if drop_path > 0. else nn.Identity())
        self.norm2 = LayerNormParallel(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, xs, H, W):
        f = self.drop_path(self.attn(self.norm1(xs), H, W))
        xs = [x + f_ for x, f_ in zip(xs, f)]
        f = self.drop_path(self.mlp(self.norm2(xs), H, W))
        return [x + f_ for x, f_ in zip(xs, f)]


class OverlapPatchEmbed(nn.Module):
    """Shared strided conv, then a per-modality LayerNorm."""

    def __init__(self, patch_size: int, stride: int, in_chans: int,
                 embed_dim: int):
        super().__init__()
        self.proj = ModuleParallel(
            nn.Conv2d(
                in_chans,
                embed_dim,
                kernel_size=patch_size,
                stride=stride,
                padding=patch_size // 2))
        self.norm = LayerNormParallel(embed_dim)

    def forward(self, xs):
        xs = self.proj(xs)
        _, _, H, W = xs[0].shape
        xs = self.norm([x.flatten(2).transpose(1, 2) for x in xs])
        return xs, H, W


class LiteralMiT(nn.Module):
    """The published MiT GeminiFusion encoder (modalities in separate passes).

    Args:
        embed_dims (Sequence[int]): Channels of the 4 stages.
        depths (Sequence[int]): Blocks per stage.
        num_heads (Sequence[int]): Self-attention heads. (1, 2, 5, 8).
        sr_ratios (Sequence[int]): Spatial reduction. (8, 4, 2, 1).
        mlp_ratio (float): Mix-FFN expansion. 4.
        drop_path_rate (float): Stochastic depth, linear 0..rate over all
            blocks. 0.
        in_chans (int): Channels of each modality's image. 3.
        n_heads (int): Heads of the fusion's MultiheadAttention. 8.
        drop_rate (float): Dropout after proj / in the MLP. 0.

    forward([x_rgb, x_depth]) (each (B, in_chans, H, W)) returns
    ``[outs_rgb, outs_depth]``, each a list of the 4 stage maps
    (B, C_s, H_s, W_s).
    """

    def __init__(self,
                 embed_dims: Sequence[int],
                 depths: Sequence[int],
                 num_heads: Sequence[int] = (1, 2, 5, 8),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 mlp_ratio: float = 4,
                 drop_path_rate: float = 0.,
                 in_chans: int = 3,
                 n_heads: int = 8,
                 drop_rate: float = 0.):
        super().__init__()
        self.embed_dims = list(embed_dims)
        self.depths = list(depths)
        dpr = [
            x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))
        ]
        cur = 0
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            setattr(
                self, f'patch_embed{s + 1}',
                OverlapPatchEmbed(patch, stride,
                                  in_chans if s == 0 else embed_dims[s - 1],
                                  embed_dims[s]))
        for s in range(4):
            setattr(
                self, f'block{s + 1}',
                nn.ModuleList([
                    Block(
                        embed_dims[s],
                        num_heads[s],
                        mlp_ratio,
                        sr_ratios[s],
                        drop_path=dpr[cur + j],
                        drop=drop_rate,
                        n_heads=n_heads) for j in range(depths[s])
                ]))
            setattr(self, f'norm{s + 1}', LayerNormParallel(embed_dims[s]))
            cur += depths[s]
        self.apply(_init_weights)

    def forward(self, xs):
        B = xs[0].shape[0]
        outs = [[] for _ in range(NUM_PARALLEL)]
        for s in range(1, 5):
            xs, H, W = getattr(self, f'patch_embed{s}')(xs)
            for blk in getattr(self, f'block{s}'):
                xs = blk(xs, H, W)
            xs = getattr(self, f'norm{s}')(xs)
            xs = [
                x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
                for x in xs
            ]
            for m in range(NUM_PARALLEL):
                outs[m].append(xs[m])
        return outs


MIT_SETTINGS = {
    'mit_b0': dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    'mit_b1': dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2)),
    'mit_b2': dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3)),
    'mit_b3': dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3)),
    'mit_b4': dict(embed_dims=(64, 128, 320, 512), depths=(3, 8, 27, 3)),
    'mit_b5': dict(embed_dims=(64, 128, 320, 512), depths=(3, 6, 40, 3)),
}


def literal_mit(name: str, **kwargs) -> LiteralMiT:
    """``literal_mit('mit_b3', drop_path_rate=0.4)``."""
    return LiteralMiT(**MIT_SETTINGS[name], **kwargs)

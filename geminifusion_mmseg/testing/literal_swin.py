"""The published GeminiFusion Swin backbone, literally (docs/model.md).

Written in the style of the release (JiaDingCN/GeminiFusion,
``models/swin_transformer.py`` + ``models/modules.py``): the modalities are a
Python list processed in separate passes by ``ModuleParallel``-style
wrappers, the per-modality LayerNorms are ``nn.LayerNorm`` named ``ln_0`` /
``ln_1`` (eps 1e-6), the window attention is an explicit softmax, and the
fusion is
:class:`~geminifusion_mmseg.testing.literal_fusion.LiteralGeminiFusion` (a
per-sample loop over ``nn.MultiheadAttention``).

Parameter names are EXACTLY those of the released checkpoints after
``module.encoder.body.`` (docs/model.md), e.g.
``patch_embed.proj.module.weight``,
``layers.0.blocks.0.attn.module.qkv.weight``,
``layers.0.blocks.0.cross_attn_0_to_1.in_proj_weight`` (fusion parameters
directly on the block), ``layers.0.downsample.module.reduction.weight``,
``norm0.ln_1.weight``.

The one knowing departure from the release: its ``PatchEmbed`` calls
``F.pad`` on the modality *list* when H or W is not a multiple of 4 (which
raises a TypeError); here each modality is padded (right/bottom, zeros), as
the unimodal Swin does.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath

from .literal_fusion import LiteralGeminiFusion

NUM_PARALLEL = 2


class ModuleParallel(nn.Module):
    """Applies ``module`` to each modality of a list."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, xs, *args):
        return [self.module(x, *args) for x in xs]


class LayerNormParallel(nn.Module):
    """One ``nn.LayerNorm(eps=1e-6)`` per modality, ``ln_0``, ``ln_1``."""

    def __init__(self, num_features):
        super().__init__()
        for i in range(NUM_PARALLEL):
            setattr(self, f'ln_{i}', nn.LayerNorm(num_features, eps=1e-6))

    def forward(self, xs):
        return [getattr(self, f'ln_{i}')(x) for i, x in enumerate(xs)]


class Mlp(nn.Module):

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = ModuleParallel(nn.Linear(dim, hidden))
        self.act = ModuleParallel(nn.GELU())
        self.fc2 = ModuleParallel(nn.Linear(hidden, dim))

    def forward(self, xs):
        return self.fc2(self.act(self.fc1(xs)))


def window_partition(x, ws):
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows, ws, H, W):
    B = int(windows.shape[0] / (H * W / ws / ws))
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


class WindowAttention(nn.Module):
    """W-MSA with relative position bias, explicit softmax."""

    def __init__(self, dim, window_size, num_heads):
        super().__init__()
        self.window_size = (window_size, window_size)
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) * (2 * window_size - 1),
                        num_heads))
        coords_h = torch.arange(window_size)
        coords_w = torch.arange(window_size)
        coords = torch.stack(
            torch.meshgrid([coords_h, coords_w], indexing='ij'))
        coords_flatten = torch.flatten(coords, 1)
        relative_coords = coords_flatten[:, :, None] - coords_flatten[:,
                                                                      None, :]
        relative_coords = relative_coords.permute(1, 2, 0).contiguous()
        relative_coords[:, :, 0] += window_size - 1
        relative_coords[:, :, 1] += window_size - 1
        relative_coords[:, :, 0] *= 2 * window_size - 1
        self.register_buffer('relative_position_index',
                             relative_coords.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, mask=None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads,
                                  C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(N, N, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N,
                             N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = torch.softmax(attn, dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj(x)


class SwinBlock(nn.Module):
    """Swin block with the fusion parameters directly on the block."""

    def __init__(self, dim, num_heads, window_size, shift_size, drop_path):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = ModuleParallel(nn.LayerNorm(dim))
        self.attn = ModuleParallel(
            WindowAttention(dim, window_size, num_heads))
        self.drop_path = ModuleParallel(
            DropPath(drop_path)) if drop_path > 0. else nn.Identity()
        self.norm2 = ModuleParallel(nn.LayerNorm(dim))
        self.mlp = Mlp(dim, 4 * dim)
        fusion = LiteralGeminiFusion(dim, num_heads=8)
        # Register the fusion's submodules on the block itself (released
        # names), and keep the fusion object only to call its forward.
        for name, module in fusion.named_children():
            self.add_module(name, module)
        object.__setattr__(self, '_fusion', fusion)
        self.H = self.W = None

    def forward(self, x, mask_matrix):
        B, L, C = x[0].shape
        H, W, ws = self.H, self.W, self.window_size
        assert L == H * W
        shortcut = x
        x = self.norm1(x)
        x = [t.view(B, H, W, C) for t in x]
        pad_r = (ws - W % ws) % ws
        pad_b = (ws - H % ws) % ws
        x = [F.pad(t, (0, 0, 0, pad_r, 0, pad_b)) for t in x]
        _, Hp, Wp, _ = x[0].shape
        if self.shift_size > 0:
            shifted = [
                torch.roll(
                    t,
                    shifts=(-self.shift_size, -self.shift_size),
                    dims=(1, 2)) for t in x
            ]
            attn_mask = mask_matrix
        else:
            shifted = x
            attn_mask = None
        windows = [
            window_partition(t, ws).view(-1, ws * ws, C) for t in shifted
        ]
        windows = self.attn(windows, attn_mask)
        shifted = [
            window_reverse(t.view(-1, ws, ws, C), ws, Hp, Wp) for t in windows
        ]
        if self.shift_size > 0:
            x = [
                torch.roll(
                    t, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
                for t in shifted
            ]
        else:
            x = shifted
        x = [t[:, :H, :W, :].contiguous().view(B, H * W, C) for t in x]
        x = self._fusion(x)
        x_dp1 = self.drop_path(x)
        x = [shortcut[i] + x_dp1[i] for i in range(len(x))]
        x_dp2 = self.drop_path(self.mlp(self.norm2(x)))
        return [x[i] + x_dp2[i] for i in range(len(x))]


class PatchMerging(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x, H, W):
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        if (H % 2 == 1) or (W % 2 == 1):
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x0 = x[:, 0::2, 0::2, :]
        x1 = x[:, 1::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, :]
        x3 = x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1).view(B, -1, 4 * C)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):

    def __init__(self, dim, depth, num_heads, window_size, drop_path,
                 downsample):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.blocks = nn.ModuleList([
            SwinBlock(dim, num_heads, window_size,
                      0 if i % 2 == 0 else window_size // 2, drop_path[i])
            for i in range(depth)
        ])
        self.downsample = ModuleParallel(
            PatchMerging(dim)) if downsample else None

    def forward(self, x, H, W):
        ws, ss = self.window_size, self.shift_size
        Hp = int(np.ceil(H / ws)) * ws
        Wp = int(np.ceil(W / ws)) * ws
        img_mask = torch.zeros((1, Hp, Wp, 1), device=x[0].device)
        slices = (slice(0, -ws), slice(-ws, -ss), slice(-ss, None))
        cnt = 0
        for h in slices:
            for w in slices:
                img_mask[:, h, w, :] = cnt
                cnt += 1
        mask_windows = window_partition(img_mask, ws).view(-1, ws * ws)
        attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
        attn_mask = attn_mask.masked_fill(attn_mask != 0,
                                          float(-100.0)).masked_fill(
                                              attn_mask == 0, float(0.0))
        for blk in self.blocks:
            blk.H, blk.W = H, W
            x = blk(x, attn_mask)
        if self.downsample is not None:
            x_down = self.downsample(x, H, W)
            return x, H, W, x_down, (H + 1) // 2, (W + 1) // 2
        return x, H, W, x, H, W


class PatchEmbed(nn.Module):

    def __init__(self, embed_dim, patch_size=4):
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = ModuleParallel(
            nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size))
        self.norm = LayerNormParallel(embed_dim)

    def forward(self, x):
        p = self.patch_size
        _, _, H, W = x[0].size()
        # The release pads the list itself here (a TypeError); pad each
        # modality instead.
        if W % p != 0:
            x = [F.pad(t, (0, p - W % p)) for t in x]
        if H % p != 0:
            x = [F.pad(t, (0, 0, 0, p - H % p)) for t in x]
        x = self.proj(x)
        Wh, Ww = x[0].size(2), x[0].size(3)
        x = [t.flatten(2).transpose(1, 2) for t in x]
        x = self.norm(x)
        return [t.transpose(1, 2).view(-1, self.embed_dim, Wh, Ww) for t in x]


class LiteralGeminiFusionSwin(nn.Module):
    """The published GeminiFusion Swin backbone, literally.

    Args:
        embed_dim (int): Channels of stage 1.
        depths (list[int]): Blocks per stage (4 stages).
        num_heads (list[int]): Window-attention heads per stage.
        window_size (int): Window side.
        drop_path_rate (float): Stochastic depth, linear over all blocks.

    forward([x_rgb, x_depth]) with each (B, 3, H, W) returns
    ``[outs_rgb, outs_depth]``, each a list of the 4 normed stage outputs
    (B, embed_dim * 2**i, H_i, W_i).
    """

    def __init__(self,
                 embed_dim,
                 depths,
                 num_heads,
                 window_size,
                 drop_path_rate=0.):
        super().__init__()
        self.num_layers = len(depths)
        self.num_features = [embed_dim * 2**i for i in range(self.num_layers)]
        self.patch_embed = PatchEmbed(embed_dim)
        dpr = [
            x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))
        ]
        self.layers = nn.ModuleList()
        for i in range(self.num_layers):
            self.layers.append(
                BasicLayer(
                    self.num_features[i],
                    depths[i],
                    num_heads[i],
                    window_size,
                    dpr[sum(depths[:i]):sum(depths[:i + 1])],
                    downsample=i < self.num_layers - 1))
        for i in range(self.num_layers):
            self.add_module(f'norm{i}',
                            LayerNormParallel(self.num_features[i]))

    def forward(self, x):
        x = self.patch_embed(x)
        Wh, Ww = x[0].size(2), x[0].size(3)
        x = [t.flatten(2).transpose(1, 2) for t in x]
        outs = []
        for i in range(self.num_layers):
            x_out, H, W, x, Wh, Ww = self.layers[i](x, Wh, Ww)
            x_out = getattr(self, f'norm{i}')(x_out)
            outs.append([
                t.view(-1, H, W, self.num_features[i]).permute(0, 3, 1,
                                                               2).contiguous()
                for t in x_out
            ])
        return [[o[m] for o in outs] for m in range(NUM_PARALLEL)]


class LiteralSwinEncoder(nn.Module):
    """The release's ``TransformerBackbone``: the Swin sits under ``body``,
    so the state-dict keys are the released ones after ``module.``
    (``encoder.body.layers.0...`` inside a :class:`LiteralSegmenter`).

    Shape: as the wrapped :class:`LiteralGeminiFusionSwin`.
    """

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, xs):
        return self.body(xs)

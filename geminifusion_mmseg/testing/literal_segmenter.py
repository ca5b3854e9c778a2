"""The published segmenter (the release's WeTr), literally.

``LiteralSegmenter(encoder, in_channels, num_classes)`` holds ``encoder``
(any module mapping ``[x_rgb, x_depth]`` to ``[outs_rgb, outs_depth]``, each
4 maps: :class:`~geminifusion_mmseg.testing.literal_mit.LiteralMiT` or the
literal Swin encoder), ``decoder`` (:class:`LiteralSegFormerHead`,
shared) and ``alpha`` (ones(2)); forward returns
``[logits_rgb, logits_depth, ens]`` at 1/4 of the input resolution,
``ens = sum_l softmax(alpha)[l] * logits_l.detach()``.

:func:`released_state_dict` / :func:`save_released_checkpoint` write what a
released ``.pth.tar`` holds (``segmenter`` with ``module.``-prefixed keys,
``epoch_start``, ``best_val`` as a numpy float64).

Written from docs/model.md and the structure of the release
(JiaDingCN/GeminiFusion ``models/segformer.py``). A test oracle, never used
by the plugin's models.
"""
from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_PARALLEL = 2


class MLP(nn.Module):
    """Linear embedding of a (B, C, H, W) map to (B, H*W, embed_dim)."""

    def __init__(self, input_dim: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(input_dim, embed_dim)

    def forward(self, x):
        return self.proj(x.flatten(2).transpose(1, 2))


class ConvBNReLU(nn.Module):
    """1x1 conv without bias + BatchNorm + ReLU, named like mmcv's
    ``ConvModule`` (``conv``, ``bn``, ``activate``) and initialised like it
    (Kaiming normal fan_out for the conv, BN weight 1 / bias 0)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)
        nn.init.kaiming_normal_(
            self.conv.weight, a=0, mode='fan_out', nonlinearity='relu')
        nn.init.constant_(self.bn.weight, 1)
        nn.init.constant_(self.bn.bias, 0)

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class LiteralSegFormerHead(nn.Module):
    """The original SegFormer all-MLP head (the release's SegFormerHead).

    Per level a Linear(C_i -> embedding_dim) (no norm, no activation),
    levels 2..4 upsampled bilinearly (align_corners False) to level 1,
    concatenated as [c4, c3, c2, c1], ``linear_fuse`` (1x1 conv no bias + BN +
    ReLU), Dropout2d(0.1), ``linear_pred`` (1x1 conv to the classes).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 embedding_dim: int = 256,
                 num_classes: int = 40):
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.in_channels = list(in_channels)
        self.num_classes = num_classes
        self.linear_c4 = MLP(c4, embedding_dim)
        self.linear_c3 = MLP(c3, embedding_dim)
        self.linear_c2 = MLP(c2, embedding_dim)
        self.linear_c1 = MLP(c1, embedding_dim)
        self.dropout = nn.Dropout2d(0.1)
        self.linear_fuse = ConvBNReLU(4 * embedding_dim, embedding_dim)
        self.linear_pred = nn.Conv2d(embedding_dim, num_classes, 1)

    def forward(self, feats):
        c1, c2, c3, c4 = feats
        n = c4.shape[0]
        size = c1.shape[2:]

        def embed(layer, c, upsample):
            y = layer(c).permute(0, 2, 1).reshape(n, -1, c.shape[2],
                                                  c.shape[3])
            if upsample:
                y = F.interpolate(
                    y, size=size, mode='bilinear', align_corners=False)
            return y

        _c4 = embed(self.linear_c4, c4, True)
        _c3 = embed(self.linear_c3, c3, True)
        _c2 = embed(self.linear_c2, c2, True)
        _c1 = embed(self.linear_c1, c1, False)
        x = self.linear_fuse(torch.cat([_c4, _c3, _c2, _c1], dim=1))
        return self.linear_pred(self.dropout(x))


class LiteralSegmenter(nn.Module):
    """encoder + shared decoder + ensemble weight ``alpha`` (the release's
    WeTr).

    Args:
        encoder (nn.Module): ``[x_rgb, x_depth] -> [outs_rgb, outs_depth]``.
        in_channels (Sequence[int]): Channels of the 4 encoder outputs.
        num_classes (int): Classes.
        embedding_dim (int): Decoder width. 256 in the release.
    """

    def __init__(self,
                 encoder: nn.Module,
                 in_channels: Sequence[int],
                 num_classes: int,
                 embedding_dim: int = 256):
        super().__init__()
        self.num_parallel = NUM_PARALLEL
        self.encoder = encoder
        self.decoder = LiteralSegFormerHead(in_channels, embedding_dim,
                                            num_classes)
        self.alpha = nn.Parameter(torch.ones(NUM_PARALLEL))

    def forward(self, xs):
        feats = self.encoder(xs)
        outs = [self.decoder(feats[0]), self.decoder(feats[1])]
        alpha_soft = F.softmax(self.alpha, dim=0)
        ens = 0
        for m in range(self.num_parallel):
            ens = ens + alpha_soft[m] * outs[m].detach()
        outs.append(ens)
        return outs


def released_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The state dict as a released checkpoint's ``segmenter`` entry:
    every key prefixed with ``module.`` (saved from DistributedDataParallel),
    tensors detached on the CPU."""
    return OrderedDict(('module.' + k, v.detach().cpu().clone())
                       for k, v in model.state_dict().items())


def save_released_checkpoint(model: nn.Module,
                             path: str,
                             epoch_start: int = 0,
                             best_val=np.float64(0.)) -> dict:
    """Write ``{'segmenter', 'epoch_start', 'best_val'}`` like the release's
    ``.pth.tar`` files (best_val a numpy float64). Returns the dict."""
    ckpt = {
        'segmenter': released_state_dict(model),
        'epoch_start': int(epoch_start),
        'best_val': np.float64(best_val),
    }
    torch.save(ckpt, path)
    return ckpt

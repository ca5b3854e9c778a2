"""The DeLiVER code line of GeminiFusion, literally (a test oracle).

Branch ``DeLiVER`` of JiaDingCN/GeminiFusion (built on CMNeXt), files
``semseg/models/backbones/geminifusion_backbone.py``,
``semseg/models/geminifusion.py``, CMNeXt's ``semseg/models/heads/
segformer.py`` and ``semseg/losses.py``, written as that code reads:

* K >= 1 input modalities travel as a list (RGB first); the patch-embed
  LayerNorms have one copy per INPUT modality (``ln_0 .. ln_{K-1}``); the
  blocks (the same GeminiFusion blocks as the NYUDv2 code line:
  :class:`~.literal_mit.Block`, per-sample ``nn.MultiheadAttention``) and the
  four stage norms always see TWO streams;
* K > 2: per stage ``extra_score_predictor[s]`` holds K score nets
  (depth-wise 3x3 conv, 1x1 conv to 1 channel, sigmoid) of which the first
  K - 1 are used: after the stage's patch embedding each extra modality
  ``t_i`` becomes ``t_i * score_i + t_i`` and stream 1 is their
  element-wise max; after the stage, each extra modality's next input is
  its scaled pre-block tokens (as a map) plus stream 1's stage output;
* the head is CMNeXt's SegFormer head (the original all-MLP head) with
  embedding dim 512 for every variant, applied to each stream, outputs
  upsampled bilinearly to the input size, ensemble ``softmax(alpha)`` of the
  detached outputs (alpha trained);
* the loss is CMNeXt's ``OhemCrossEntropy`` (threshold 0.7, at least
  ``valid // 16`` pixels) summed over ``[out0, out1, ens]``.

Parameter names are those of the branch's bare ``state_dict`` (e.g.
``backbone.patch_embed1.norm.ln_2.weight``,
``backbone.extra_score_predictor.0.score_nets.1.0.weight``,
``decode_head.linear_fuse.bn.running_mean``, ``alpha``). Slow on purpose,
never used by the plugin.
"""
import functools
import math
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .literal_mit import (MIT_SETTINGS, Block, LayerNormParallel,
                          ModuleParallel, _init_weights)
from .literal_segmenter import LiteralSegFormerHead


class LayerNormParallelK(nn.Module):
    """``LayerNormParallel(num_features, num_modal)``: ``ln_0..ln_{K-1}``."""

    def __init__(self, num_features: int, num_modal: int):
        super().__init__()
        for i in range(num_modal):
            setattr(self, f'ln_{i}', nn.LayerNorm(num_features, eps=1e-6))

    def forward(self, xs):
        return [getattr(self, f'ln_{i}')(x) for i, x in enumerate(xs)]


class OverlapPatchEmbedK(nn.Module):
    """Shared strided conv, then one LayerNorm per input modality."""

    def __init__(self, patch_size: int, stride: int, in_chans: int,
                 embed_dim: int, num_modal: int):
        super().__init__()
        self.proj = ModuleParallel(
            nn.Conv2d(
                in_chans,
                embed_dim,
                kernel_size=patch_size,
                stride=stride,
                padding=patch_size // 2))
        self.norm = LayerNormParallelK(embed_dim, num_modal)
        self.apply(_init_weights)

    def forward(self, xs):
        xs = self.proj(xs)
        _, _, H, W = xs[0].shape
        xs = self.norm([x.flatten(2).transpose(1, 2) for x in xs])
        return xs, H, W


class PredictorConv(nn.Module):
    """K score nets; ``forward`` scores the first K - 1 token lists."""

    def __init__(self, embed_dim: int, num_modals: int):
        super().__init__()
        self.num_modals = num_modals
        self.score_nets = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(embed_dim, embed_dim, 3, 1, 1, groups=embed_dim),
                nn.Conv2d(embed_dim, 1, 1), nn.Sigmoid())
            for _ in range(num_modals)
        ])

    def forward(self, x, H, W):
        B, N, C = x[0].shape
        scores = []
        for i in range(self.num_modals - 1):
            m = x[i].view(B, H, W, C).permute(0, 3, 1, 2)
            scores.append(self.score_nets[i](m).permute(0, 2, 3,
                                                        1).view(B, N, 1))
        return scores


class LiteralDeLiVERBackbone(nn.Module):
    """``GeminiFusionBackbone(model_name, modals)`` of the branch.

    forward(list of K (B, 3, H, W)) -> ``[outs0, outs1]``, each the 4 stage
    maps (B, C_s, H_s, W_s) of stream 0 (RGB) and stream 1.
    """

    def __init__(self,
                 embed_dims: Sequence[int],
                 depths: Sequence[int],
                 num_modals: int,
                 num_heads: Sequence[int] = (1, 2, 5, 8),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 drop_path_rate: float = 0.,
                 n_heads: int = 8):
        super().__init__()
        self.num_modals = num_modals
        self.embed_dims = list(embed_dims)
        self.depths = list(depths)
        for s in range(4):
            patch, stride = (7, 4) if s == 0 else (3, 2)
            setattr(
                self, f'patch_embed{s + 1}',
                OverlapPatchEmbedK(patch, stride,
                                   3 if s == 0 else embed_dims[s - 1],
                                   embed_dims[s], num_modals))
        dpr = [
            x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))
        ]
        cur = 0
        for s in range(4):
            setattr(
                self, f'block{s + 1}',
                nn.ModuleList([
                    Block(
                        embed_dims[s],
                        num_heads[s],
                        4,
                        sr_ratios[s],
                        drop_path=dpr[cur + j],
                        n_heads=n_heads) for j in range(depths[s])
                ]))
            setattr(self, f'norm{s + 1}', LayerNormParallel(embed_dims[s]))
            cur += depths[s]
        if num_modals > 2:
            self.extra_score_predictor = nn.ModuleList([
                PredictorConv(embed_dims[s], num_modals)
                for s in range(len(depths))
            ])
        self.apply(_init_weights)

    @staticmethod
    def tokenselect(x_ext, module, H, W):
        """Scale each extra modality IN PLACE (the list is shared with the
        caller, as in the branch) and return their element-wise max."""
        x_scores = module(x_ext, H, W)
        for i in range(len(x_ext)):
            x_ext[i] = x_scores[i] * x_ext[i] + x_ext[i]
        return functools.reduce(torch.max, x_ext)

    def forward(self, x: List[torch.Tensor]):
        B = x[0].shape[0]
        outs0, outs1 = [], []
        for s in range(1, 5):
            x, H, W = getattr(self, f'patch_embed{s}')(x)
            if self.num_modals > 2:
                x_ext = x[1:]
                x_f = self.tokenselect(x_ext,
                                       self.extra_score_predictor[s - 1], H, W)
                x = [x[0], x_f]
            for blk in getattr(self, f'block{s}'):
                x = blk(x, H, W)
            x = getattr(self, f'norm{s}')(x)
            x = [
                x_.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
                for x_ in x
            ]
            outs0.append(x[0])
            outs1.append(x[1])
            if self.num_modals > 2 and s < 4:
                x1_f = x[1]
                x_ext = [
                    x_.reshape(B, H, W, -1).permute(0, 3, 1, 2) + x1_f
                    for x_ in x_ext
                ]
                x = [x[0]] + x_ext
        return [outs0, outs1]


class LiteralDeLiVERGeminiFusion(nn.Module):
    """``GeminiFusion(backbone, num_classes, modals)`` of the branch.

    forward(list of K (B, 3, H, W)) -> ``[out0, out1, ens]`` (B, classes,
    H, W) at the INPUT size.
    """

    def __init__(self,
                 arch: str,
                 num_classes: int,
                 num_modals: int,
                 drop_path_rate: float = 0.):
        super().__init__()
        settings = MIT_SETTINGS[arch]
        self.backbone = LiteralDeLiVERBackbone(
            settings['embed_dims'],
            settings['depths'],
            num_modals,
            drop_path_rate=drop_path_rate)
        # 512 for every variant: the branch tests "B0" in the string
        # 'GeminiFusionBackbone', which never matches
        self.decode_head = LiteralSegFormerHead(settings['embed_dims'], 512,
                                                num_classes)
        self.apply(self._init_weights)
        self.num_parallel = 2
        self.alpha = nn.Parameter(torch.ones(self.num_parallel))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """The branch's top-level init (its conv fan-out ignores groups)."""
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: List[torch.Tensor]) -> List[torch.Tensor]:
        x_modals = self.backbone(x)
        outs = []
        for idx in range(self.num_parallel):
            out = self.decode_head(x_modals[idx])
            outs.append(
                F.interpolate(
                    out,
                    size=x[0].shape[2:],
                    mode='bilinear',
                    align_corners=False))
        ens = 0
        alpha_soft = F.softmax(self.alpha, dim=0)
        for idx in range(self.num_parallel):
            ens += alpha_soft[idx] * outs[idx].detach()
        outs.append(ens)
        return outs


class OhemCrossEntropy(nn.Module):
    """CMNeXt's ``OhemCrossEntropy(ignore_label=255, thresh=0.7)``."""

    def __init__(self, ignore_label: int = 255, thresh: float = 0.7):
        super().__init__()
        self.ignore_label = ignore_label
        self.thresh = -torch.log(torch.tensor(thresh, dtype=torch.float))
        self.criterion = nn.CrossEntropyLoss(
            ignore_index=ignore_label, reduction='none')

    def forward(self, preds: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        n_min = labels[labels != self.ignore_label].numel() // 16
        loss = self.criterion(preds, labels).view(-1)
        loss_hard = loss[loss > self.thresh]
        if loss_hard.numel() < n_min:
            loss_hard, _ = loss.topk(n_min)
        return torch.mean(loss_hard)


def deliver_training_loss(outputs: List[torch.Tensor],
                          labels: torch.Tensor) -> torch.Tensor:
    """``train_mm.py``: the OHEM loss summed over [out0, out1, ens]."""
    loss_fn = OhemCrossEntropy()
    loss = 0.
    for logits in outputs:
        loss += loss_fn(logits, labels)
    return loss

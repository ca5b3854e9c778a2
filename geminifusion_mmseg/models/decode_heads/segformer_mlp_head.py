"""The original SegFormer all-MLP decoder (SPEC 2.4)."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS


class LinearEmbedding(nn.Module):
    """A per-pixel Linear(C_in -> C_out): (B, C_in, H, W) -> (B, C_out, H, W).

    Named ``proj`` as the release's ``linear_c{i}.proj``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


@MODELS.register_module()
class SegFormerMLPHead(BaseDecodeHead):
    """SegFormer's all-MLP head as released with GeminiFusion.

    Per level a Linear(C_i -> channels) without norm or activation; levels
    2..4 upsampled (bilinear, align_corners=False) to level 1; concatenated
    in the order [c4, c3, c2, c1]; ``linear_fuse`` = 1x1 conv (no bias) +
    BatchNorm + ReLU; Dropout2d(dropout_ratio); ``conv_seg`` (the release's
    ``linear_pred``) to the classes. mmseg's own ``SegformerHead`` puts
    conv+BN+ReLU on every level and cannot load released weights.

    Args:
        in_channels (Sequence[int]): Channels of the 4 input levels.
        channels (int): Embedding width. Defaults to 256.
        **kwargs: :class:`BaseDecodeHead` arguments (num_classes,
            dropout_ratio=0.1, norm_cfg, loss_decode, align_corners, ...).

    Shape:
        - Input: 4 maps (N, C_i, H_i, W_i), H_1 = H / 4.
        - Output: (N, num_classes, H_1, W_1).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256,
                 **kwargs):
        kwargs.setdefault('in_index', [0, 1, 2, 3])
        kwargs.setdefault('input_transform', 'multiple_select')
        super().__init__(
            in_channels=list(in_channels), channels=channels, **kwargs)
        if len(self.in_channels) != 4:
            raise ValueError('SegFormerMLPHead expects 4 input levels, got '
                             f'in_channels={self.in_channels}')
        for i, c in enumerate(self.in_channels):
            self.add_module(f'linear_c{i + 1}', LinearEmbedding(c, channels))
        self.linear_fuse = ConvModule(
            in_channels=4 * channels,
            out_channels=channels,
            kernel_size=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        feats = self._transform_inputs(inputs)
        size = feats[0].shape[2:]
        embedded = []
        for i in reversed(range(4)):  # order [c4, c3, c2, c1]
            x = getattr(self, f'linear_c{i + 1}')(feats[i])
            if i > 0:
                x = F.interpolate(
                    x, size=size, mode='bilinear', align_corners=False)
            embedded.append(x)
        return self.cls_seg(self.linear_fuse(torch.cat(embedded, dim=1)))

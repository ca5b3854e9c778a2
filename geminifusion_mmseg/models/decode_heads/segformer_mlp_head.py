"""The original SegFormer all-MLP decoder (SPEC 2.4)."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList


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

    def _fusable(self) -> bool:
        """Whether ``linear_fuse`` is a plain 1x1 conv (then norm, then
        activation), so that it can be folded into the level embeddings."""
        conv = self.linear_fuse.conv
        return (type(conv) is nn.Conv2d and conv.kernel_size == (1, 1)
                and conv.stride == (1, 1) and conv.padding == (0, 0)
                and conv.groups == 1
                and tuple(self.linear_fuse.order) == ('conv', 'norm', 'act'))

    def fused_embeddings(self, feats: List[Tensor]) -> Tensor:
        """``linear_fuse.conv(cat([up(c4'), up(c3'), up(c2'), c1']))``
        without the concatenation.

        With ``c_i' = W_i c_i + b_i`` (the per-pixel ``linear_c{i}``) and
        ``F = [F_4 | F_3 | F_2 | F_1]`` the 1x1 conv's weight split by input
        block, bilinear upsampling (per channel, weights summing to one)
        commutes with per-pixel affine maps, so::

            F cat(...) = sum_i up((F_i W_i) c_i + F_i b_i)

        Each level is mapped straight to ``channels`` at its own resolution
        by one 1x1 conv with the folded weight ``F_i W_i`` (channels x C_i);
        the (N, 4 * channels, H_1, W_1) concatenation and the large
        4*channels -> channels conv are never formed. Same function and
        parameters as the literal head; gradients reach ``F`` and ``W_i``
        through the folding.

        Args:
            feats (list[Tensor]): 4 maps (N, C_i, H_i, W_i).

        Returns:
            Tensor: (N, channels, H_1, W_1) in channels-last memory format,
            before ``linear_fuse``'s norm and activation.
        """
        conv = self.linear_fuse.conv
        # blocks of the fuse weight, in the concatenation order [c4..c1]
        blocks = conv.weight.flatten(1).split(self.channels, dim=1)
        size = feats[0].shape[2:]
        out: Optional[Tensor] = None
        for i in reversed(range(4)):
            linear = getattr(self, f'linear_c{i + 1}').proj
            block = blocks[3 - i]  # (channels, channels)
            weight = block @ linear.weight  # (channels, C_i)
            bias = block @ linear.bias
            if out is None and conv.bias is not None:
                bias = bias + conv.bias
            # channels-last: the 1x1 conv is one GEMM and bilinear
            # up-sampling (and its backward) has a vectorised kernel; the
            # MiT backbones already return channels-last strided maps
            x = feats[i].contiguous(memory_format=torch.channels_last)
            y = F.conv2d(x, weight[:, :, None, None], bias)
            if i > 0:
                y = F.interpolate(
                    y, size=size, mode='bilinear', align_corners=False)
            out = y if out is None else out + y
        return out

    def forward(self, inputs: List[Tensor]) -> Tensor:
        feats = self._transform_inputs(inputs)
        if not self._fusable():
            return self.forward_unfolded(feats)
        x = self.fused_embeddings(feats)
        if self.linear_fuse.with_norm:
            x = self.linear_fuse.norm(x)
        if self.linear_fuse.with_activation:
            x = self.linear_fuse.activate(x)
        return self.cls_seg(x)

    def forward_unfolded(self, feats: List[Tensor]) -> Tensor:
        """The head as written in the release: embed, upsample, concatenate,
        ``linear_fuse``, classify. Same function as :meth:`forward`."""
        size = feats[0].shape[2:]
        embedded = []
        for i in reversed(range(4)):  # order [c4, c3, c2, c1]
            x = getattr(self, f'linear_c{i + 1}')(feats[i])
            if i > 0:
                x = F.interpolate(
                    x, size=size, mode='bilinear', align_corners=False)
            embedded.append(x)
        return self.cls_seg(self.linear_fuse(torch.cat(embedded, dim=1)))

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> dict:
        """mmseg's decode-head loss (logits resized bilinearly to the
        labels, every ``loss_decode`` term) and ``acc_seg``.

        Same values as :meth:`BaseDecodeHead.loss_by_feat`; the accuracy is
        computed without autograd from ``max`` instead of ``topk(1)`` (the
        same top-1 label), which on CPU costs a fraction of ``topk`` over
        the full-resolution logits.
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        seg_logits = resize(
            input=seg_logits,
            size=seg_label.shape[2:],
            mode='bilinear',
            align_corners=self.align_corners)
        seg_weight = (
            self.sampler.sample(seg_logits, seg_label)
            if self.sampler is not None else None)
        seg_label = seg_label.squeeze(1)
        losses_decode = (
            self.loss_decode if isinstance(self.loss_decode, nn.ModuleList)
            else [self.loss_decode])
        loss = dict()
        for loss_decode in losses_decode:
            value = loss_decode(
                seg_logits,
                seg_label,
                weight=seg_weight,
                ignore_index=self.ignore_index)
            name = loss_decode.loss_name
            loss[name] = loss[name] + value if name in loss else value
        loss['acc_seg'] = top1_accuracy(seg_logits, seg_label,
                                        self.ignore_index)
        return loss


@torch.no_grad()
def top1_accuracy(logits: Tensor, labels: Tensor,
                  ignore_index: Optional[int] = 255) -> Tensor:
    """Pixel accuracy in percent, as ``mmseg.models.losses.accuracy`` with
    ``topk=1`` (same eps), from ``logits.max(1)``.

    Args:
        logits (Tensor): (N, K, H, W).
        labels (Tensor): (N, H, W).

    Returns:
        Tensor: shape (1,).
    """
    eps = torch.finfo(torch.float32).eps
    correct = logits.max(dim=1).indices == labels
    if ignore_index is not None:
        valid = labels != ignore_index
        correct = correct & valid
        total = valid.sum()
    else:
        total = labels.numel()
    return ((correct.sum().float() + eps) * (100.0 /
                                            (total + eps))).reshape(1)

"""The original SegFormer all-MLP decoder (docs/model.md, "Decoder, ensemble
and loss")."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.losses import CrossEntropyLoss
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm


class LinearEmbedding(nn.Module):
    """A per-pixel Linear(C_in -> C_out): (B, C_in, H, W) -> (B, C_out, H, W).

    Named ``proj`` as the release's ``linear_c{i}.proj``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def pixel_linear(x: Tensor,
                 weight: Tensor,
                 bias: Optional[Tensor] = None) -> Tensor:
    """A 1x1 convolution as one GEMM over channels-last pixels.

    Args:
        x (Tensor): (N, C_in, H, W), any memory format (made channels-last:
            the MiT backbones already return channels-last strided maps).
        weight (Tensor): (C_out, C_in).
        bias (Tensor, optional): (C_out,).

    Returns:
        Tensor: (N, C_out, H, W), channels-last, so that bilinear
        up-sampling, the loss's log-softmax over classes and their
        backward passes run over contiguous channels.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    return F.linear(x.permute(0, 2, 3, 1), weight, bias).permute(0, 3, 1, 2)


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

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 256,
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

    def _frozen_norm_affine(self) -> Optional[Tuple[Tensor, Tensor]]:
        """``(scale, shift)`` with ``norm(z) = z * scale + shift`` when
        ``linear_fuse``'s norm is a BatchNorm in eval mode (running
        statistics; the released "freeze BN"), else None. Differentiable
        in the BatchNorm's weight and bias."""
        if not self.linear_fuse.with_norm:
            return None
        norm = self.linear_fuse.norm
        if not isinstance(norm, _BatchNorm) or norm.training or \
                norm.running_var is None:
            return None
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = -norm.running_mean * scale
        if norm.bias is not None:
            shift = shift + norm.bias
        return scale, shift

    def fused_embeddings(
            self,
            feats: List[Tensor],
            norm_affine: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """``linear_fuse.conv(cat([up(c4'), up(c3'), up(c2'), c1']))``
        without the concatenation (and, given ``norm_affine``, the frozen
        BatchNorm after it).

        With ``c_i' = W_i c_i + b_i`` (the per-pixel ``linear_c{i}``) and
        ``F = [F_4 | F_3 | F_2 | F_1]`` the 1x1 conv's weight split by input
        block, bilinear upsampling (per channel, weights summing to one)
        commutes with per-pixel affine maps, so::

            F cat(...) = sum_i up((F_i W_i) c_i + F_i b_i)

        Each level is mapped straight to ``channels`` at its own resolution
        by one 1x1 conv with the folded weight ``F_i W_i`` (channels x C_i);
        the (N, 4 * channels, H_1, W_1) concatenation and the large
        4*channels -> channels conv are never formed. A per-channel affine
        ``z * scale + shift`` after the sum folds in the same way. Same
        function and parameters as the literal head; gradients reach every
        parameter through the folding.

        Args:
            feats (list[Tensor]): 4 maps (N, C_i, H_i, W_i).
            norm_affine (tuple[Tensor], optional): ``(scale, shift)``, each
                (channels,), applied to the conv's output.

        Returns:
            Tensor: (N, channels, H_1, W_1) in channels-last memory format.
        """
        conv = self.linear_fuse.conv
        # blocks of the fuse weight, in the concatenation order [c4..c1]
        blocks = conv.weight.flatten(1).split(self.channels, dim=1)
        const = conv.bias
        if norm_affine is not None:
            scale, shift = norm_affine
            blocks = [scale[:, None] * block for block in blocks]
            const = shift if const is None else const * scale + shift
        size = feats[0].shape[2:]
        out: Optional[Tensor] = None
        for i in reversed(range(4)):
            linear = getattr(self, f'linear_c{i + 1}').proj
            block = blocks[3 - i]  # (channels, channels)
            weight = block @ linear.weight  # (channels, C_i)
            bias = block @ linear.bias
            if out is None and const is not None:
                bias = bias + const  # added once; up(constant) = constant
            y = pixel_linear(feats[i], weight, bias)
            if i > 0:
                y = F.interpolate(
                    y, size=size, mode='bilinear', align_corners=False)
            # in place: neither up-sampling nor the GEMM needs its output
            out = y if out is None else out.add_(y)
        return out

    def classify(self, x: Tensor, keep: Optional[Tensor] = None) -> Tensor:
        """``cls_seg``: ``conv_seg(dropout(x))`` with Dropout2d folded into
        the classifier's weights.

        Dropout2d multiplies whole channels of each sample by ``keep`` (0
        or 1 / (1 - p)), so ``conv_seg(x * keep) = (W * keep_n) x_n + b``:
        one batched GEMM with per-sample weights, and no dropped-out copy
        of ``x`` is kept for the backward pass.

        Args:
            x (Tensor): (N, channels, H, W).
            keep (Tensor, optional): (N, channels) channel multipliers;
                drawn like ``nn.Dropout2d`` in training if not given.

        Returns:
            Tensor: (N, num_classes, H, W), channels-last if ``x`` is.
        """
        dropout = self.dropout
        if keep is None:
            if not (self.training and isinstance(dropout, nn.Dropout2d)
                    and dropout.p > 0):
                # dropout is the identity
                return pixel_linear(x, self.conv_seg.weight.flatten(1),
                                    self.conv_seg.bias)
            if dropout.p >= 1:
                keep = x.new_zeros(x.shape[:2])
            else:
                keep = x.new_empty(x.shape[:2]).bernoulli_(1 - dropout.p)
                keep.div_(1 - dropout.p)
        N, C, H, W = x.shape
        weight = self.conv_seg.weight.flatten(1)  # (K, C)
        tokens = x.permute(0, 2, 3, 1).reshape(N, H * W, C)  # view if NHWC
        per_sample = (weight * keep[:, None, :]).transpose(1, 2)  # (N, C, K)
        if self.conv_seg.bias is None:
            out = torch.bmm(tokens, per_sample)
        else:
            out = torch.baddbmm(self.conv_seg.bias, tokens, per_sample)
        return out.view(N, H, W, -1).permute(0, 3, 1, 2)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Same function as :meth:`forward_unfolded`, computed with the
        concatenation and ``linear_fuse``'s conv folded into the level
        embeddings (:meth:`fused_embeddings`), a frozen BatchNorm folded as
        well, and the dropout folded into the classifier
        (:meth:`classify`)."""
        feats = self._transform_inputs(inputs)
        if not self._fusable():
            return self.forward_unfolded(feats)
        norm_affine = self._frozen_norm_affine()
        x = self.fused_embeddings(feats, norm_affine)
        if norm_affine is None and self.linear_fuse.with_norm:
            x = self.linear_fuse.norm(x)
        if self.linear_fuse.with_activation:
            x = self.linear_fuse.activate(x)
        return self.classify(x)

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

        Same values as :meth:`BaseDecodeHead.loss_by_feat`, computed with
        the class axis last: a plain softmax cross-entropy (mmseg's
        ``CrossEntropyLoss`` without sigmoid, mask or class weights) is
        taken over the (N*H*W, K) pixel rows, which for the channels-last
        logits of :meth:`forward` is a view, so ``F.cross_entropy`` neither
        copies the full-resolution logits nor takes its log-softmax across
        strided memory. Other loss terms get the (N, K, H, W) logits. The
        accuracy comes from :func:`top1_accuracy` (no autograd, a fraction
        of the cost of mmseg's ``topk``).
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
        # (N*H*W, K) pixel rows and (N*H*W,) labels
        rows = seg_logits.permute(0, 2, 3, 1).reshape(-1, seg_logits.shape[1])
        row_labels = seg_label.reshape(-1)
        losses_decode = (
            self.loss_decode if isinstance(self.loss_decode, nn.ModuleList)
            else [self.loss_decode])
        loss = dict()
        for loss_decode in losses_decode:
            if seg_weight is None and _is_plain_softmax_ce(loss_decode):
                value = loss_decode(
                    rows, row_labels, ignore_index=self.ignore_index)
            else:
                value = loss_decode(
                    seg_logits,
                    seg_label,
                    weight=seg_weight,
                    ignore_index=self.ignore_index)
            name = loss_decode.loss_name
            loss[name] = loss[name] + value if name in loss else value
        loss['acc_seg'] = top1_accuracy(rows, row_labels, self.ignore_index)
        return loss


def _is_plain_softmax_ce(loss: nn.Module) -> bool:
    """mmseg's softmax ``CrossEntropyLoss`` without class weights: its
    value is the same on (N, K, H, W) logits and on (N*H*W, K) rows."""
    return (type(loss) is CrossEntropyLoss and not loss.use_sigmoid
            and not loss.use_mask and loss.class_weight is None)


@torch.no_grad()
def top1_accuracy(logits: Tensor,
                  labels: Tensor,
                  ignore_index: Optional[int] = 255) -> Tensor:
    """Pixel accuracy in percent, as ``mmseg.models.losses.accuracy`` with
    ``topk=1`` (same eps): a pixel is correct when its label's logit is the
    maximum (a gather and an ``amax``, much cheaper on CPU than ``topk``;
    differs from it only on exact ties).

    Args:
        logits (Tensor): (N, K, ...), e.g. (N, K, H, W) or (P, K) rows.
        labels (Tensor): (N, ...).

    Returns:
        Tensor: shape (1,).
    """
    eps = torch.finfo(torch.float32).eps
    num_classes = logits.shape[1]
    in_range = (labels >= 0) & (labels < num_classes)
    target = torch.where(in_range, labels, 0).unsqueeze(1)
    correct = (logits.gather(1, target) >= logits.amax(
        1, keepdim=True)).squeeze(1) & in_range
    if ignore_index is not None:
        valid = labels != ignore_index
        correct = correct & valid
        total = valid.sum()
    else:
        total = labels.numel()
    accuracy = (correct.sum().float() + eps) * (100.0 / (total + eps))
    return accuracy.reshape(1)

"""Tiny models shared by the test modules: a MultiModalEncoderDecoder
config, the literal published segmenters (the oracles), random weights."""
import torch
import torch.nn as nn

from geminifusion_mmseg.testing.literal_mit import LiteralMiT
from geminifusion_mmseg.testing.literal_segmenter import LiteralSegmenter
from geminifusion_mmseg.testing.literal_swin import (LiteralGeminiFusionSwin,
                                                     LiteralSwinEncoder)

#: Classes of :data:`TINY_SEGMENTOR`.
TINY_NUM_CLASSES = 5
#: A tiny RGB-D MultiModalEncoderDecoder config (MiT 16-64 channels, one
#: block per stage, a 32-channel head).
TINY_SEGMENTOR = dict(
    type='MultiModalEncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53, 0, 0, 0],
        std=[58.395, 57.12, 57.375, 255, 255, 255],
        bgr_to_rgb=False,
        pad_val=0,
        seg_pad_val=255),
    backbone=dict(
        type='GeminiFusionMiT',
        arch=dict(embed_dims=(16, 32, 40, 64), depths=(1, 1, 1, 1)),
        drop_path_rate=0.1),
    decode_head=dict(
        type='SegFormerMLPHead',
        in_channels=[16, 32, 40, 64],
        channels=32,
        num_classes=TINY_NUM_CLASSES,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))


def literal_mit_segmenter(num_classes=5, channels=32):
    """The literal published segmenter on a tiny MiT (16-64 channels)."""
    enc = LiteralMiT((16, 32, 40, 64), (1, 2, 1, 1))
    return LiteralSegmenter(enc, enc.embed_dims, num_classes, channels)


def literal_swin_segmenter(num_classes=5, channels=32):
    """The literal published segmenter on a tiny Swin (32 channels)."""
    body = LiteralGeminiFusionSwin(32, [2, 2, 2, 2], [2, 4, 8, 8], 7)
    return LiteralSegmenter(
        LiteralSwinEncoder(body), body.num_features, num_classes, channels)


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Random weights (init + noise) and random BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            scale = 0.1 if p.dim() > 1 else 0.5
            p.add_(torch.randn(p.shape, generator=g) * scale)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(
                    torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(
                    torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(1234)
    return model.eval()


def random_bn_statistics_(model: nn.Module) -> nn.Module:
    """BatchNorm running statistics that are not the identity (mean
    U(-0.1, 0.1), var U(0.5, 1.5), from torch's global RNG), in place."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model

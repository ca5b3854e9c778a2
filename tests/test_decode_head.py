"""SegFormerMLPHead: the folded computation equals the release's."""
import pytest
import torch
from mmseg.models.losses import accuracy
from mmseg.registry import MODELS

from geminifusion_mmseg.models.decode_heads.segformer_mlp_head import \
    top1_accuracy

IN_CHANNELS = [8, 16, 24, 32]


def build(**kwargs):
    cfg = dict(
        type='SegFormerMLPHead',
        in_channels=IN_CHANNELS,
        channels=16,
        num_classes=5,
        dropout_ratio=0.1,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', avg_non_ignore=True))
    cfg.update(kwargs)
    head = MODELS.build(cfg).double()
    if not head.linear_fuse.with_norm:
        return head
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine
        bn = head.linear_fuse.bn
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_(1.0, 0.3)
        bn.bias.normal_()
    return head


def feats(batch=2, h=13, w=17, channels_last=False):
    out = []
    for i, c in enumerate(IN_CHANNELS):
        x = torch.randn(
            batch, c, -(-h // 2**i), -(-w // 2**i), dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(x.requires_grad_())
    return out


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('bn_mode', ['eval', 'train'])
@pytest.mark.parametrize('channels_last', [False, True])
def test_folded_head_matches_release_with_gradients(bn_mode, channels_last):
    head = build(dropout_ratio=0.0)  # dropout checked separately
    head.train()
    if bn_mode == 'eval':  # "freeze BN": the norm folds into the weights
        head.linear_fuse.bn.eval()
        assert head._frozen_norm_affine() is not None
    else:
        assert head._frozen_norm_affine() is None
    results = []
    base = feats(channels_last=channels_last)
    for fn in (head.forward, lambda f: head.forward_unfolded(f)):
        inputs = [x.detach().clone().requires_grad_() for x in base]
        head.zero_grad()
        out = fn(inputs)
        upstream = torch.linspace(
            -1, 1, out.numel(), dtype=out.dtype).view(out.shape)
        (out * upstream).sum().backward()
        results.append((out.detach(), [x.grad for x in inputs], {
            n: p.grad.clone()
            for n, p in head.named_parameters()
        }))
    (out_a, gin_a, gp_a), (out_b, gin_b, gp_b) = results
    assert out_a.shape == out_b.shape == (2, 5, 13, 17)
    assert _rel(out_a, out_b) < 1e-12
    for a, b in zip(gin_a, gin_b):
        assert _rel(a, b) < 1e-12
    assert gp_a.keys() == gp_b.keys()
    for name in gp_a:
        # with batch statistics the gradient of a bias before the
        # BatchNorm is zero up to rounding: compare on the common scale
        scale = max(g.abs().max().item() for g in gp_b.values())
        torch.testing.assert_close(
            gp_a[name], gp_b[name], rtol=1e-10, atol=1e-12 * scale, msg=name)


def test_folded_dropout_is_dropout2d_on_the_classifier_input():
    head = build().train()
    x = torch.randn(3, 16, 6, 7, dtype=torch.float64)
    keep = torch.bernoulli(torch.full((3, 16), 0.9, dtype=torch.float64)) / 0.9
    ref = head.conv_seg(x * keep[:, :, None, None])
    torch.testing.assert_close(head.classify(x, keep), ref)
    torch.testing.assert_close(
        head.classify(x.contiguous(memory_format=torch.channels_last), keep),
        ref)
    # drawn masks: whole channels of a sample are dropped (or scaled)
    torch.manual_seed(0)
    eye = torch.eye(16, dtype=torch.float64)
    head.conv_seg.weight.data = eye[:5, :, None, None]
    head.conv_seg.bias.data.zero_()
    out = head.classify(torch.ones(64, 16, 2, 2, dtype=torch.float64))
    values = set(out.unique().tolist())
    assert values <= {0.0, 1 / 0.9} and len(values) == 2
    assert (out == out[..., :1, :1]).all()  # one value per channel
    head.eval()
    torch.testing.assert_close(head.classify(x), head.conv_seg(x))


def test_top1_accuracy_matches_mmseg():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 9, 11)
    labels = torch.randint(0, 7, (2, 9, 11))
    labels[0, :3] = 255
    torch.testing.assert_close(
        top1_accuracy(logits, labels, 255),
        accuracy(logits, labels, ignore_index=255))
    torch.testing.assert_close(
        top1_accuracy(logits, labels.clamp(max=6), None),
        accuracy(logits, labels.clamp(max=6)))


@pytest.mark.parametrize('loss_decode', [
    dict(type='CrossEntropyLoss', avg_non_ignore=True),
    dict(type='CrossEntropyLoss', avg_non_ignore=False, loss_weight=0.4),
    dict(type='CrossEntropyLoss', class_weight=[1., 2., .5, 1., 3.]),
    [
        dict(type='CrossEntropyLoss', avg_non_ignore=True),
        dict(type='DiceLoss', loss_weight=0.5)
    ],
])
@pytest.mark.parametrize('channels_last', [False, True])
def test_loss_by_feat_matches_mmseg(loss_decode, channels_last):
    from mmengine.structures import PixelData
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    from mmseg.structures import SegDataSample
    head = build(loss_decode=loss_decode).float()
    logits = torch.randn(2, 5, 8, 10)
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    samples = []
    for _ in range(2):
        s = SegDataSample()
        label = torch.randint(0, 5, (1, 31, 37))
        if 'class_weight' not in str(loss_decode):  # mmseg fails on 255
            label[0, :2] = 255
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    ours = head.loss_by_feat(logits.requires_grad_(), samples)
    ref = BaseDecodeHead.loss_by_feat(head, logits, samples)
    assert ours.keys() == ref.keys()
    for k in ours:
        torch.testing.assert_close(ours[k], ref[k])
    grads = [
        torch.autograd.grad(
            sum(v for k, v in d.items() if 'loss' in k), logits)[0]
        for d in (ours, ref)
    ]
    torch.testing.assert_close(grads[0], grads[1])


def test_unfusable_head_falls_back():
    head = build(conv_cfg=None, act_cfg=None, norm_cfg=None).eval()
    # without a norm the conv has a bias; still foldable
    assert head.linear_fuse.conv.bias is not None and head._fusable()
    inputs = feats()
    torch.testing.assert_close(head(inputs), head.forward_unfolded(inputs))
    head.linear_fuse.order = ('norm', 'conv', 'act')
    assert not head._fusable()
    torch.testing.assert_close(head(inputs), head.forward_unfolded(inputs))

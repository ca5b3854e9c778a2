"""MultiModalEncoderDecoder: branch losses, ensemble, inference modes."""
import copy

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch.nn.modules.batchnorm import _BatchNorm

from tests.helpers.tiny_models import TINY_NUM_CLASSES as NUM_CLASSES
from tests.helpers.tiny_models import TINY_SEGMENTOR as CFG


def build(**overrides):
    cfg = copy.deepcopy(CFG)
    cfg.update(overrides)
    return MODELS.build(cfg)


def samples(batch, h, w):
    out = []
    for _ in range(batch):
        s = SegDataSample(
            metainfo=dict(
                img_shape=(h, w),
                ori_shape=(h, w),
                pad_shape=(h, w),
                padding_size=[0, 0, 0, 0]))
        s.gt_sem_seg = PixelData(data=torch.randint(0, NUM_CLASSES, (1, h, w)))
        out.append(s)
    return out


def test_losses_are_named_per_branch_and_all_params_learn():
    model = build().train()
    losses = model.loss(torch.randn(2, 6, 45, 61), samples(2, 45, 61))
    assert set(losses) == {
        f'{b}.{k}'
        for b in ('rgb', 'depth', 'ens')
        for k in ('loss_ce', 'acc_seg')
    }
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == ['alpha']  # fixed at ones, as released


def test_ensemble_loss_does_not_reach_the_network():
    model = build(learn_alpha=True).train()
    losses = model.loss(torch.randn(1, 6, 40, 40), samples(1, 40, 40))
    losses['ens.loss_ce'].backward()
    assert model.alpha.grad is not None and model.alpha.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters()
               if n != 'alpha')


def test_alpha_defaults_to_fixed_ones():
    model = build()
    assert torch.equal(model.alpha.data, torch.ones(2))
    assert not model.alpha.requires_grad
    assert build(learn_alpha=True).alpha.requires_grad


def test_prediction_is_the_average_of_the_branches():
    model = build().eval()
    x = torch.randn(2, 6, 50, 70)
    with torch.no_grad():
        rgb, depth, ens = model._branch_logits(x)
        torch.testing.assert_close(ens, (rgb + depth) / 2)
        results = model.predict(x, samples(2, 50, 70))
    logits = model.encode_decode(x, [r.metainfo for r in results])
    assert results[0].seg_logits.data.shape == (NUM_CLASSES, 50, 70)
    torch.testing.assert_close(results[1].seg_logits.data, logits[1])
    assert torch.equal(results[1].pred_sem_seg.data[0], logits[1].argmax(0))
    for name in ('rgb', 'depth'):
        assert results[0].get(f'pred_sem_seg_{name}').data.shape == (1, 50, 70)


def test_branch_logits_is_the_public_contract():
    """``branch_logits``: one (B, K, H/4, W/4) map per stream, then the
    ensemble, in ``branch_names`` order; the ensemble is ``_forward``'s
    output, and ``predict`` resizes exactly these maps."""
    model = build().eval()
    x = torch.randn(2, 6, 48, 64)
    with torch.no_grad():
        outs = model.branch_logits(x)
        assert len(outs) == len(model.branch_names) == 3
        assert all(o.shape == (2, NUM_CLASSES, 12, 16) for o in outs)
        assert torch.equal(outs[-1], model._forward(x))
        for a, b in zip(outs, model._branch_logits(x)):
            assert torch.equal(a, b)
        results = model.predict(x, samples(2, 48, 64))
    ens = torch.nn.functional.interpolate(
        outs[-1], size=(48, 64), mode='bilinear', align_corners=False)
    torch.testing.assert_close(results[0].seg_logits.data, ens[0])


def test_slide_inference_matches_whole_when_one_window_covers_all():
    model = build().eval()
    x = torch.randn(1, 6, 48, 64)
    with torch.no_grad():
        metas = [s.metainfo for s in samples(1, 48, 64)]
        whole = model.inference(x, metas)
        model.test_cfg = ConfigDict(
            mode='slide', crop_size=(64, 64), stride=(32, 32))
        slide = model.inference(x, metas)
        model.test_cfg = ConfigDict(
            mode='slide', crop_size=(32, 32), stride=(16, 24))
        tiled = model.predict(x, samples(1, 48, 64))
    torch.testing.assert_close(whole, slide)
    assert tiled[0].pred_sem_seg.data.shape == (1, 48, 64)
    assert tiled[0].pred_sem_seg_depth.data.shape == (1, 48, 64)


def test_norm_eval_freezes_batchnorm():
    model = build().train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(m.training for m in bns)
    model = build(norm_eval=False).train()
    assert all(m.training for m in model.modules()
               if isinstance(m, _BatchNorm))
    # BN in train mode: the head runs once per modality; still trains
    losses = model.loss(torch.randn(2, 6, 40, 40), samples(2, 40, 40))
    assert torch.isfinite(losses['rgb.loss_ce'])


def test_wrong_channel_count_is_a_clear_error():
    model = build()
    with pytest.raises(ValueError, match=r'\(B, 6, H, W\).*got shape'):
        model.predict(torch.randn(1, 4, 32, 32), samples(1, 32, 32))


def test_modality_count_must_match_backbone():
    with pytest.raises(ValueError, match='num_modalities=2'):
        build(modality_names=('rgb', 'depth', 'thermal'))


def test_bad_test_mode():
    model = build(test_cfg=dict(mode='tile')).eval()
    with pytest.raises(ValueError, match="'tile'"):
        model.predict(torch.randn(1, 6, 32, 32), samples(1, 32, 32))


@pytest.mark.parametrize('resize_mode', ['bilinear', 'bicubic'])
def test_bad_flip_direction_is_a_clear_error(resize_mode):
    model = build(test_cfg=dict(mode='whole', resize_mode=resize_mode)).eval()
    data = samples(1, 32, 32)
    data[0].set_metainfo(dict(flip=True, flip_direction='diagonal'))
    with pytest.raises(ValueError, match="flip_direction 'diagonal'"):
        model.predict(torch.randn(1, 6, 32, 32), data)

"""The DeLiVER code line (K input modalities) against its literal oracle.

The oracle is :mod:`geminifusion_mmseg.testing.literal_deliver` (the
branch's model written as it reads: modalities as lists, a per-sample
``nn.MultiheadAttention`` loop). Its random weights (noise on every
parameter, score nets and alpha included, random BatchNorm statistics) are
carried into our ``MultiModalEncoderDecoder`` (built from
``configs/_base_/models/geminifusion_mit_deliver.py``) by the released
checkpoint converter, which reads the branch's bare state dict. Eval: the
three outputs agree; train: the summed OHEM loss and the gradient of every
parameter agree (docs/model.md "K modalities").
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from geminifusion_mmseg.checkpoints.pretrained import load_pretrained_backbone
from geminifusion_mmseg.checkpoints.released import (
    ReleasedCheckpointError, check_converted_state_dict,
    convert_released_checkpoint, convert_released_state_dict,
    find_matching_configs, model_config_fragment)
from geminifusion_mmseg.models.backbones import GeminiFusionMiT, MiTKeyMap
from geminifusion_mmseg.testing.literal_deliver import (
    LiteralDeLiVERGeminiFusion, deliver_training_loss)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_BASE = osp.join(ROOT, 'configs', '_base_', 'models',
                      'geminifusion_mit_deliver.py')
NUM_CLASSES = 6

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def literal_model(arch: str, k: int, seed: int = 0):
    """The oracle with noise on every parameter and random BN statistics,
    float64."""
    torch.manual_seed(seed)
    ref = LiteralDeLiVERGeminiFusion(arch, NUM_CLASSES, k).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        ref.alpha.copy_(torch.randn(2, dtype=torch.double))
        for name, b in ref.named_buffers():
            if name.endswith('running_mean'):
                b.normal_(0, 0.5)
            elif name.endswith('running_var'):
                b.uniform_(0.5, 2.0)
    return ref


def ours_from(ref, dropout_ratio: float = 0.1):
    """Our segmentor from the DeLiVER model base config, with the oracle's
    weights through the checkpoint converter (strict)."""
    sd, info = convert_released_state_dict(ref.state_dict(), '<literal>')
    frag = model_config_fragment(info)
    cfg = Config.fromfile(MODEL_BASE).model
    k = info.num_modalities
    cfg.backbone.update(frag['backbone'], drop_path_rate=0.)
    cfg.backbone.setdefault('in_channels', 3 * k)
    cfg.backbone.setdefault('num_modalities', k)
    cfg.decode_head.update(frag['decode_head'], dropout_ratio=dropout_ratio)
    cfg.modality_names = ('rgb', 'depth') if k == 2 else ('rgb', 'fused')
    cfg.pop('data_preprocessor')
    ours = MODELS.build(cfg).double()
    ours.load_state_dict(sd, strict=True)
    return ours, info


def inputs(k: int, size, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, 3, *size, generator=g, dtype=torch.double)
        for _ in range(k)
    ]


def labels(batch: int, size, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, NUM_CLASSES, (batch, *size), generator=g)
    lab[torch.rand(batch, *size, generator=g) < 0.1] = 255
    return lab


def samples(lab):
    out = []
    for label in lab:
        shape = tuple(label.shape)
        s = SegDataSample(
            metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
        s.gt_sem_seg = PixelData(data=label[None])
        out.append(s)
    return out


CASES_EVAL = [(k, 'mit_b0', (61, 83)) for k in (2, 3, 4)] + \
    [(k, 'mit_b2', (100, 124)) for k in (2, 4)]


@pytest.mark.parametrize('k,arch,size', CASES_EVAL)
def test_eval_outputs_match_the_branch(k, arch, size):
    ref = literal_model(arch, k).eval()
    ours, info = ours_from(ref)
    ours.eval()
    assert info.layout == 'deliver' and info.num_modalities == k
    assert info.channels == 512 and ours.decode_head.channels == 512
    x = inputs(k, size)
    with torch.no_grad():
        expected = ref(x)
        got = ours._branch_logits(torch.cat(x, 1))
    assert len(got) == 3
    for e, g in zip(expected, got):
        g = F.interpolate(g, size=size, mode='bilinear', align_corners=False)
        assert e.shape == g.shape
        torch.testing.assert_close(g, e, rtol=0, atol=1e-5)


@pytest.mark.parametrize('k', [2, 3, 4])
def test_training_loss_and_gradients_match_the_branch(k):
    size = (61, 83)
    ref = literal_model('mit_b0', k).train()
    ref.decode_head.dropout.p = 0.  # deterministic comparison
    ours, info = ours_from(ref, dropout_ratio=0.)
    ours.train()
    x, lab = inputs(k, size), labels(2, size)

    loss_ref = deliver_training_loss(ref(x), lab)
    loss_ref.backward()
    losses = ours.loss(torch.cat(x, 1), samples(lab))
    names = ('rgb.loss_ohem', ('depth' if k == 2 else 'fused') + '.loss_ohem',
             'ens.loss_ohem')
    assert set(names) <= set(losses)
    loss = sum(v for n, v in losses.items() if 'loss' in n)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-10, atol=1e-10)
    loss.backward()

    ref_params = dict(ref.named_parameters())
    checked = 0
    for key, p in ours.named_parameters():
        theirs = ref_params[info.released_names[key]]
        if theirs.grad is None:
            assert p.grad is None, key
            continue
        assert p.grad is not None, key
        torch.testing.assert_close(
            p.grad, theirs.grad, rtol=1e-6, atol=1e-9, msg=key)
        checked += 1
    assert ours.alpha.grad is not None and ours.alpha.grad.abs().sum() > 0
    if k > 2:
        for s in range(4):
            nets = ours.backbone.layers[s].token_select.score_nets
            for i in range(k - 1):
                assert nets[i][0].weight.grad.abs().sum() > 0
            # the K-th net: never used by the branch, frozen here
            assert nets[k - 1][0].weight.grad is None
            assert not nets[k - 1][0].weight.requires_grad
            assert ref_params[f'backbone.extra_score_predictor.{s}.'
                              f'score_nets.{k - 1}.0.weight'].grad is None
    assert checked > 100
    # BatchNorm statistics updated alike (per stream)
    torch.testing.assert_close(ours.decode_head.linear_fuse.bn.running_mean,
                               ref.decode_head.linear_fuse.bn.running_mean)


def test_alpha_is_trained_only_by_the_ensemble_loss():
    ref = literal_model('mit_b0', 3).train()
    ours, _ = ours_from(ref)
    ours.train()
    size = (32, 40)
    losses = ours.loss(torch.cat(inputs(3, size), 1), samples(labels(2, size)))
    assert ours.alpha.requires_grad
    for branch in ('rgb', 'fused'):
        grad, = torch.autograd.grad(
            losses[f'{branch}.loss_ohem'],
            ours.alpha,
            retain_graph=True,
            allow_unused=True)
        assert grad is None
    grad, = torch.autograd.grad(losses['ens.loss_ohem'], ours.alpha)
    assert grad.abs().sum() > 0


def test_optimizer_config_gives_alpha_no_weight_decay():
    """The branch's get_optimizer: decode head lr x10 (weight decay kept),
    every other 1-d parameter (alpha, norms, biases) without weight decay;
    the frozen K-th score net is left out."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'geminifusion',
                 'geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py'))
    model_cfg = cfg.model
    model_cfg.backbone.arch = 'b0'
    model_cfg.decode_head.in_channels = [32, 64, 160, 256]
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr, wd = cfg.optim_wrapper.optimizer.lr, \
        cfg.optim_wrapper.optimizer.weight_decay
    by_param = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            by_param[id(p)] = (group['lr'], group['weight_decay'])
    seen = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert id(p) not in by_param and '.score_nets.3.' in name
            continue
        seen += 1
        if name.startswith('decode_head.'):
            expected = (10 * lr, wd)
        elif p.dim() == 1:
            expected = (lr, 0.)
        else:
            expected = (lr, wd)
        assert by_param[id(p)] == pytest.approx(expected), name
    assert by_param[id(model.alpha)] == pytest.approx((lr, 0.))
    assert seen == len(by_param)


def test_k2_keys_are_unchanged_and_k_gt_2_adds_token_selection():
    k2 = GeminiFusionMiT('b0').state_dict()
    assert not any('token_select' in k or '.ln_2.' in k for k in k2)
    k4 = GeminiFusionMiT('b0', in_channels=12, num_modalities=4).state_dict()
    new = sorted(set(k4) - set(k2))
    assert set(k2) <= set(k4)
    assert 'layers.0.token_select.score_nets.3.1.bias' in new
    assert 'layers.3.patch_embed.norm.ln_3.weight' in new
    assert all('token_select' in k or 'patch_embed.norm.ln_' in k for k in new)
    # blocks and stage norms keep two streams
    assert 'layers.0.norm.ln_2.weight' not in k4
    assert 'layers.1.blocks.0.norm1.ln_2.weight' not in k4


def test_score_net_init_reproduces_the_branch_quirk():
    torch.manual_seed(0)
    m = GeminiFusionMiT('b2', in_channels=9, num_modalities=3)
    m.init_weights()
    dw = m.layers[2].token_select.score_nets[0][0].weight  # 320 channels
    # std sqrt(2 / (9 * C)) (fan-out not divided by groups), not sqrt(2/9)
    assert dw.std().item() == pytest.approx((2 / (9 * 320))**0.5, rel=0.05)
    mlp_dw = m.layers[2].blocks[0].mlp.dwconv.dwconv.weight
    assert mlp_dw.std().item() == pytest.approx((2 / 9)**0.5, rel=0.05)


def test_pretrained_mit_fills_only_ln_0_and_ln_1(tmp_path):
    """As the branch's _expand_state_dict: the unimodal norms go to ln_0 and
    ln_1 only; ln_2, ln_3 and the token selection keep their init."""
    torch.manual_seed(0)
    nvlabs = {}
    for key, v in GeminiFusionMiT('b0').state_dict().items():
        canonical = MiTKeyMap.ours_to_canonical(key)
        if canonical is not None:
            nvlabs[canonical] = torch.randn_like(v)
    path = str(tmp_path / 'mit_b0.pth')
    torch.save(nvlabs, path)
    m = GeminiFusionMiT('b0', in_channels=12, num_modalities=4)
    m.init_weights()
    init = {k: v.clone() for k, v in m.state_dict().items()}
    report = load_pretrained_backbone(m, path)
    assert not report['missing'] and not report['unexpected']
    fresh = set(report['fresh'])
    for s in range(4):
        norm = m.layers[s].patch_embed.norm
        for i in (0, 1):
            torch.testing.assert_close(
                getattr(norm, f'ln_{i}').weight,
                nvlabs[f'patch_embed{s + 1}.norm.weight'])
        for i in (2, 3):
            key = f'layers.{s}.patch_embed.norm.ln_{i}.weight'
            assert key in fresh
            assert torch.equal(m.state_dict()[key],
                               torch.ones(init[key].shape))
        key = f'layers.{s}.token_select.score_nets.0.0.weight'
        assert key in fresh and torch.equal(m.state_dict()[key], init[key])
    torch.testing.assert_close(m.layers[0].blocks[0].attn.q.weight,
                               nvlabs['block1.0.attn.q.weight'])


def test_configuration_errors_are_clear():
    with pytest.raises(
            ValueError, match=r'in_channels=6, but num_modalities=3 need 9'):
        GeminiFusionMiT('b0', in_channels=6, num_modalities=3)
    with pytest.raises(ValueError, match='num_modalities must be >= 2'):
        GeminiFusionMiT('b0', in_channels=3, num_modalities=1)
    with pytest.raises(ValueError, match="DeLiVER.*GeminiFusionMiT"):
        MODELS.build(
            dict(
                type='GeminiFusionSwin',
                arch='tiny',
                in_channels=9,
                num_modalities=3))
    with pytest.raises(ValueError, match=r"\('rgb', 'fused'\)"):
        MODELS.build(
            dict(
                type='MultiModalEncoderDecoder',
                modality_names=('rgb', 'depth', 'event'),
                backbone=dict(
                    type='GeminiFusionMiT', in_channels=9, num_modalities=3),
                decode_head=dict(
                    type='SegFormerMLPHead',
                    in_channels=[32, 64, 160, 256],
                    num_classes=3)))


# --- the branch's released checkpoints ----------------------------------


@pytest.mark.parametrize('k,classes', [(4, 25), (2, 9)])
def test_branch_checkpoint_file_converts_exactly(k, classes, tmp_path):
    """A bare branch state dict on disk -> the converter -> strict load:
    logits within 1e-4 of the oracle, same argmax (float32, as shipped)."""
    from mmengine.runner import load_checkpoint
    torch.manual_seed(0)
    ref = LiteralDeLiVERGeminiFusion('mit_b0', classes, k).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    src = str(tmp_path / 'geminifusion_b0_deliver.pth')
    torch.save(ref.state_dict(), src)  # what train_mm.py saves
    dst = str(tmp_path / 'converted.pth')
    ckpt, info = convert_released_checkpoint(src, dst)
    assert info.dataset == ('deliver' if classes == 25 else 'mfnet')
    assert info.num_modalities == k and info.layout == 'deliver'
    first_class = ckpt['meta']['dataset_meta']['classes'][0]
    assert first_class == ('Building' if classes == 25 else 'unlabeled')
    frag = model_config_fragment(info)
    cfg = Config.fromfile(MODEL_BASE).model
    cfg.backbone.update(frag['backbone'])
    cfg.backbone.setdefault('in_channels', 3 * k)
    cfg.backbone.setdefault('num_modalities', k)
    cfg.decode_head.update(frag['decode_head'])
    cfg.modality_names = ('rgb', 'fused') if k > 2 else ('rgb', 'thermal')
    cfg.pop('data_preprocessor')
    ours = MODELS.build(cfg).eval()
    load_checkpoint(ours, dst, strict=True, map_location='cpu')
    x = inputs(k, (64, 96), batch=1)
    x = [t.float() for t in x]
    with torch.no_grad():
        expected = ref(x)
        got = ours._branch_logits(torch.cat(x, 1))
    for e, g in zip(expected, got):
        g = F.interpolate(
            g, size=e.shape[2:], mode='bilinear', align_corners=False)
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
        assert torch.equal(g.argmax(1), e.argmax(1))


def test_matching_configs_follow_dataset_and_modalities():
    ref = LiteralDeLiVERGeminiFusion('mit_b2', 25, 4)
    _, info = convert_released_state_dict({
        k: v.to('meta')
        for k, v in ref.state_dict().items()
    })
    config_dir = osp.join(ROOT, 'configs', 'geminifusion')
    found = [osp.basename(p) for p in find_matching_configs(info, config_dir)]
    assert found == [
        'geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py'
    ]
    info.num_modalities = 2
    found = [osp.basename(p) for p in find_matching_configs(info, config_dir)]
    assert found == sorted(
        f'geminifusion_mit-b2_8xb1-200e_deliver-rgb{m}-1024x1024.py'
        for m in 'del')


def test_branch_state_dict_refusals():
    ref = LiteralDeLiVERGeminiFusion('mit_b0', 25, 3)
    sd = ref.state_dict()
    bad = dict(sd)
    bad.pop('backbone.extra_score_predictor.2.score_nets.2.0.weight')
    with pytest.raises(
            ReleasedCheckpointError,
            match=r'extra_score_predictor\.2\.score_nets\.2'):
        convert_released_state_dict(bad, 'f.pth')
    bad = dict(sd, **{'foo.weight': torch.zeros(1)})
    with pytest.raises(
            ReleasedCheckpointError,
            match=r'"foo\.weight".*backbone, decode_head'):
        convert_released_state_dict(bad, 'f.pth')
    bad = dict(sd, **{'backbone.foo.weight': torch.zeros(1)})
    converted, info = convert_released_state_dict(bad, 'f.pth')
    with pytest.raises(
            ReleasedCheckpointError,
            match=r"f\.pth: unexpected key 'backbone\.foo\.weight'"):
        check_converted_state_dict(converted, info, 'f.pth')


# --- the schedule -------------------------------------------------------


class _BranchWarmupPolyLR(torch.optim.lr_scheduler._LRScheduler):
    """CMNeXt's ``WarmupPolyLR(optimizer, power, max_iter, warmup_iter,
    warmup_ratio, warmup='linear')`` (semseg/schedulers.py), literally."""

    def __init__(self, optimizer, power, max_iter, warmup_iter, warmup_ratio):
        self.power, self.max_iter = power, max_iter
        self.warmup_iter, self.warmup_ratio = warmup_iter, warmup_ratio
        super().__init__(optimizer, -1)

    def get_lr(self):
        if self.last_epoch < self.warmup_iter:
            alpha = self.last_epoch / self.warmup_iter
            ratio = self.warmup_ratio + (1. - self.warmup_ratio) * alpha
        else:
            real_iter = self.last_epoch - self.warmup_iter
            real_max_iter = self.max_iter - self.warmup_iter
            ratio = (1 - real_iter / real_max_iter)**self.power
        return [ratio * lr for lr in self.base_lrs]


def _two_group_optimizer(lr):
    """AdamW with a group at ``lr`` and one at ``10 * lr`` (the head's)."""
    a, b = (torch.nn.Parameter(torch.zeros(1)) for _ in range(2))
    return torch.optim.AdamW([{
        'params': [a]
    }, {
        'params': [b],
        'lr': 10 * lr
    }], lr)


def test_warmup_poly_lr_follows_the_branch_every_iteration():
    from mmengine.optim import OptimWrapper
    from mmseg.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'geminifusion',
                 'geminifusion_mit-b2_8xb1-200e_deliver-rgbd-1024x1024.py'))
    sched_cfg = dict(cfg.param_scheduler[0])
    assert sched_cfg['warmup_iters'] == 10 * 497
    assert sched_cfg['max_iters'] == 201 * 497
    lr = cfg.optim_wrapper.optimizer.lr
    # a short schedule stepped through, compared at every step
    warmup, total = 6, 25
    ours_opt, ref_opt = _two_group_optimizer(lr), _two_group_optimizer(lr)
    ours = PARAM_SCHEDULERS.build(
        dict(
            sched_cfg,
            warmup_iters=warmup,
            max_iters=total,
            optimizer=OptimWrapper(ours_opt)))
    ref = _BranchWarmupPolyLR(ref_opt, 0.9, total, warmup, 0.1)
    for step in range(total - 1):
        got = [g['lr'] for g in ours_opt.param_groups]
        expected = [g['lr'] for g in ref_opt.param_groups]
        assert got == pytest.approx(expected, rel=1e-12), step
        ours_opt.step()
        ref_opt.step()
        ours.step()
        ref.step()
    # the config's lengths, both in closed form at chosen steps
    warmup, total = sched_cfg['warmup_iters'], sched_cfg['max_iters']
    ours = PARAM_SCHEDULERS.build(
        dict(sched_cfg, optimizer=OptimWrapper(_two_group_optimizer(lr))))
    ref = _BranchWarmupPolyLR(
        _two_group_optimizer(lr), 0.9, total, warmup, 0.1)
    last = 200 * 498 - 1  # the last step of training
    for step in (0, 1, warmup - 1, warmup, warmup + 1, 50000, last):
        ours.last_step = ref.last_epoch = step
        # mmengine's wrapper lists a third, "base" group last
        assert ours._get_value()[:2] == pytest.approx(ref.get_lr(), rel=1e-12)


def test_cli_converts_a_branch_file(tmp_path):
    import subprocess
    import sys
    ref = LiteralDeLiVERGeminiFusion('mit_b0', 25, 3)
    src, dst = str(tmp_path / 'branch.pth'), str(tmp_path / 'out.pth')
    torch.save(ref.state_dict(), src)
    cli = osp.join(ROOT, 'tools', 'model_converters', 'geminifusion2mmseg.py')
    out = subprocess.run([sys.executable, cli, src, dst],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    assert '3 modalities (DeLiVER code line)' in out
    assert 'num_modalities=3' in out and 'num_classes: 25 (deliver)' in out
    assert '"num_modalities": 3' in out and '"in_channels": 9' in out
    sd = torch.load(dst, weights_only=True)['state_dict']
    assert 'backbone.layers.3.token_select.score_nets.2.1.bias' in sd


def test_branch_file_initialises_a_backbone_one_to_one(tmp_path):
    """init_cfg=dict(type='Pretrained', checkpoint=<branch file>): every
    backbone tensor, token selection included, from the file."""
    ref = literal_model('mit_b0', 3).float()
    path = str(tmp_path / 'branch.pth')
    torch.save(ref.state_dict(), path)
    m = GeminiFusionMiT('b0', in_channels=9, num_modalities=3)
    report = load_pretrained_backbone(m, path)
    assert report['format'] == 'geminifusion' and not report['missing']
    sd, _ = convert_released_state_dict(ref.state_dict())
    for key, value in m.state_dict().items():
        assert torch.equal(value, sd['backbone.' + key]), key

"""docs/training.md: staged poly-with-warmup lr, per-stage optimizer reset,
param groups."""
import glob
import os
import types
import uuid
import warnings

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.runner import Runner
from mmseg.registry import PARAM_SCHEDULERS

import geminifusion_mmseg  # noqa: F401  (registers the plugin)
from geminifusion_mmseg.engine.hooks import StageOptimizerResetHook
from geminifusion_mmseg.engine.schedulers import StagedPolyLR

BASE_LR = 6e-5


# --------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------
def spec6_lr(base,
             t,
             stage_len,
             factors=(1., .5, .25),
             warmup=1500,
             ratio=1e-6,
             poly=40000,
             power=1.):
    """docs/training.md written out: lr of iteration t (0-based, global)."""
    s = min(t // stage_len, len(factors) - 1)
    i = t - s * stage_len
    if i < warmup:
        f = 1 - (1 - i / warmup) * (1 - ratio)
    elif i < poly:
        f = (1 - i / poly)**power
    else:  # "then it stays where it was": the value of i = poly - 1
        f = (1 - (poly - 1) / poly)**power
    return base * factors[s] * f


def release_lrs(group_lrs, stage_len, n_iters, factors, warmup, ratio, poly,
                power):
    """Simulate the release: a fresh PolyWarmupAdamW-like object per stage,
    lr set before each optimizer step, left unchanged past max_iter."""
    out = []
    t = 0
    for f_stage in factors:
        init = [lr * f_stage for lr in group_lrs]
        cur = list(init)
        for global_step in range(stage_len):
            if global_step < warmup:
                m = 1 - (1 - global_step / warmup) * (1 - ratio)
                cur = [x * m for x in init]
            elif global_step < poly:
                m = (1 - global_step / poly)**power
                cur = [x * m for x in init]
            out.append(list(cur))
            t += 1
            if t == n_iters:
                return out
    return out


def _opt(lrs=(BASE_LR, BASE_LR * 10)):
    params = [nn.Parameter(torch.zeros(2)) for _ in lrs]
    return torch.optim.AdamW(
        [dict(params=[p], lr=lr) for p, lr in zip(params, lrs)],
        lr=lrs[0],
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.01)


def _step_to(sched, t):
    """Put a scheduler at global step t the way a resume does."""
    state = sched.state_dict()
    state['last_step'] = t - 1
    state['_global_step'] = t - 1
    sched.load_state_dict(state)
    sched.step()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        yield


# --------------------------------------------------------------------------
# Scheduler alone
# --------------------------------------------------------------------------
def test_published_curve_sampled_decoder_lr_mult_10():
    """Default arguments (docs/training.md) with SUN-like stages of 66000
    iterations (longer than the poly, so the flat part is reached): encoder
    group and decoder group (x10) at boundaries, in warmup, in poly, after
    poly."""
    stage = 66000
    opt = _opt()
    sched = StagedPolyLR(opt, stage_lengths=(stage, ) * 3, by_epoch=False)
    points = []
    for s in range(3):
        for i in (0, 1, 750, 1499, 1500, 1501, 20000, 39998, 39999, 40000,
                  50000, stage - 1):
            points.append(s * stage + i)
    points.append(3 * stage + 5)  # past the last stage: flat
    for t in points:
        _step_to(sched, t)
        for g, base in enumerate((BASE_LR, BASE_LR * 10)):
            assert opt.param_groups[g]['lr'] == pytest.approx(
                spec6_lr(base, t, stage), rel=1e-12, abs=0), (t, g)
    # Spot values: stage bases 6e-5 / 3e-5 / 1.5e-5 (decoder x10).
    _step_to(sched, 2 * stage + 1000)
    assert opt.param_groups[1]['lr'] == pytest.approx(
        1.5e-4 * (1 - (1 - 1000 / 1500) * (1 - 1e-6)))
    # Discontinuity of the release at the end of warmup (noted in docs).
    _step_to(sched, 1499)
    before = opt.param_groups[0]['lr'] / BASE_LR
    _step_to(sched, 1500)
    after = opt.param_groups[0]['lr'] / BASE_LR
    assert before == pytest.approx(1 - (1 / 1500) * (1 - 1e-6))
    assert after == pytest.approx(0.9625)
    # First iteration of a stage starts at warmup_ratio.
    _step_to(sched, stage)
    assert opt.param_groups[0]['lr'] == pytest.approx(3e-5 * 1e-6)


def test_stepped_matches_release_simulation_and_resume():
    """Small lengths, every step, against the release's per-stage loop;
    a scheduler restored from a state dict continues identically."""
    kw = dict(
        stage_lengths=(50, 40, 30),
        stage_factors=(1., .5, .25),
        warmup_iters=7,
        warmup_ratio=1e-3,
        poly_iters=33,
        power=0.9)
    n = 130  # 10 past the last stage
    opt = _opt()
    sched = StagedPolyLR(opt, by_epoch=False, **kw)
    got = []
    for t in range(n):
        got.append([g['lr'] for g in opt.param_groups])
        opt.step()
        sched.step()
        if t == 61:
            state = sched.state_dict()
    # One fresh release optimizer per stage (the last one runs on 10 more
    # iterations than its length: the schedule stays in the last stage).
    ref = (
        release_lrs([BASE_LR, BASE_LR * 10], 50, 50,
                    (1., ), 7, 1e-3, 33, 0.9) +
        release_lrs([BASE_LR * .5, BASE_LR * 5], 40, 40,
                    (1., ), 7, 1e-3, 33, 0.9) +
        release_lrs([BASE_LR * .25, BASE_LR * 2.5], 40, 40,
                    (1., ), 7, 1e-3, 33, 0.9))
    assert len(ref) == n
    for t in range(n):
        assert got[t] == pytest.approx(ref[t], rel=1e-12), t
    # Resume: a fresh optimizer/scheduler loaded from the state at t=61
    # (state saved after the step that prepared iteration 62).
    opt2 = _opt()
    sched2 = StagedPolyLR(opt2, by_epoch=False, **kw)
    sched2.load_state_dict(state)
    sched2.step()  # prepares iteration 63
    assert [g['lr'] for g in opt2.param_groups] == pytest.approx(got[63])


def test_convert_to_iter_based_and_validation():
    opt = _opt()
    sched = PARAM_SCHEDULERS.build(
        dict(
            type='StagedPolyLR',
            stage_lengths=(100, 100, 100),
            by_epoch=True,
            convert_to_iter_based=True,
            begin=0,
            end=300),
        default_args=dict(optimizer=opt, epoch_length=132))
    assert not sched.by_epoch
    assert sched.stage_lengths == [13200] * 3
    assert sched.stage_starts == [0, 13200, 26400]
    assert sched.end == 300 * 132
    assert opt.param_groups[0]['lr'] == pytest.approx(BASE_LR * 1e-6)
    with pytest.raises(ValueError, match='convert_to_iter_based'):
        StagedPolyLR(_opt(), by_epoch=True)
    with pytest.raises(ValueError, match='same length'):
        StagedPolyLR(
            _opt(), stage_lengths=(1, 2), stage_factors=(1., ), by_epoch=False)


def test_hook_is_stateless_at_boundaries():
    """Clears exactly at stage starts, whatever came before (resume)."""
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = StagedPolyLR(opt, stage_lengths=(5, 5, 5), by_epoch=False)
    logs = []
    runner = types.SimpleNamespace(
        param_schedulers=[sched],
        iter=0,
        optim_wrapper=types.SimpleNamespace(optimizer=opt),
        logger=types.SimpleNamespace(info=logs.append))
    hook = StageOptimizerResetHook()
    assert hook.find_boundaries(runner) == {5: 1, 10: 2}
    cleared_at = []
    for it in [0, 3, 4, 5, 6, 9, 10, 11, 5, 10]:  # last two: resumes
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        runner.iter = it
        hook.before_train_iter(runner, batch_idx=0)
        if not opt.state:
            cleared_at.append(it)
    assert cleared_at == [5, 10, 5, 10]
    assert sum('begins stage' in line for line in logs) == 4
    with pytest.raises(RuntimeError, match='no StagedPolyLR'):
        StageOptimizerResetHook.find_boundaries(
            types.SimpleNamespace(param_schedulers=[]))


# --------------------------------------------------------------------------
# Param groups (docs/training.md), mmengine's DefaultOptimWrapperConstructor
# --------------------------------------------------------------------------
class _Norm(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.ln_0 = nn.LayerNorm(c, eps=1e-6)


class _Attn(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.q = nn.Linear(c, c)


class _Block(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.norm1 = _Norm(c)
        self.attn = _Attn(c)


class _Fuse(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)


class _Backbone(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.block1 = nn.ModuleList([_Block(c)])


class _Head(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.linear_fuse = _Fuse(c)


class _Seg(nn.Module):

    def __init__(self, c=4):
        super().__init__()
        self.backbone = _Backbone(c)
        self.decode_head = _Head(c)


def test_param_groups_match_spec6():
    model = _Seg()
    names = dict(model.named_parameters())
    assert {
        'backbone.block1.0.norm1.ln_0.weight',
        'backbone.block1.0.attn.q.weight',
        'decode_head.linear_fuse.conv.weight',
        'decode_head.linear_fuse.bn.weight'
    } <= set(names)
    # As the Runner does with an optim_wrapper config (it pops
    # paramwise_cfg and hands it to the constructor).
    wrapper = DefaultOptimWrapperConstructor(
        dict(
            type='OptimWrapper',
            optimizer=dict(
                type='AdamW',
                lr=6e-5,
                betas=(0.9, 0.999),
                eps=1e-8,
                weight_decay=0.01)),
        paramwise_cfg=dict(custom_keys={
            'norm': dict(decay_mult=0.),
            'decode_head': dict(lr_mult=10.)
        }))(
            model)
    by_param = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            by_param[id(p)] = (group['lr'], group['weight_decay'])
    expect = {
        # encoder, name contains "norm": wd 0
        'backbone.block1.0.norm1.ln_0.weight': (6e-5, 0.),
        'backbone.block1.0.norm1.ln_0.bias': (6e-5, 0.),
        # encoder, other: wd
        'backbone.block1.0.attn.q.weight': (6e-5, 0.01),
        'backbone.block1.0.attn.q.bias': (6e-5, 0.01),
        # decoder (BN included): lr x10, wd
        'decode_head.linear_fuse.conv.weight': (6e-4, 0.01),
        'decode_head.linear_fuse.bn.weight': (6e-4, 0.01),
        'decode_head.linear_fuse.bn.bias': (6e-4, 0.01),
    }
    assert set(expect) == set(names)
    for name, (lr, wd) in expect.items():
        got_lr, got_wd = by_param[id(names[name])]
        assert got_lr == pytest.approx(lr, rel=1e-12), name
        assert got_wd == pytest.approx(wd), name
    # The scheduler keeps each group's own base lr.
    sched = StagedPolyLR(
        wrapper,
        stage_lengths=(10, 10),
        stage_factors=(1., .5),
        warmup_iters=0,
        poly_iters=0,
        by_epoch=False)
    _step_to(sched, 10)
    for group in wrapper.optimizer.param_groups:
        assert group['lr'] == pytest.approx(.5 * group['initial_lr'])


# --------------------------------------------------------------------------
# With a real mmengine Runner
# --------------------------------------------------------------------------
class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.decode_head = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        loss = self.decode_head(self.backbone(x)).pow(2).mean()
        return dict(loss=loss)


class _TinySet(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        return dict(inputs=torch.full((2, ), float(idx + 1)))


class _Recorder(Hook):
    """Records lr and AdamW step count before each iteration (after the
    reset hook, which has a higher priority)."""

    priority = 'NORMAL'

    def __init__(self):
        self.rows = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        opt = runner.optim_wrapper.optimizer
        p = runner.model.backbone.weight
        step = opt.state[p]['step'] if p in opt.state else 0
        self.rows[runner.iter] = ([g['lr']
                                   for g in opt.param_groups], int(step))


STAGE_EPOCHS = (2, 2, 2)
EPOCH_LEN = 4
STAGE_ITERS = 8
W, P = 3, 6  # warmup 3 iters, poly 6 iters: flat from i=6 to 7


def _runner(work_dir, max_epochs, recorder, resume_from=None):
    cfg = dict(
        model=_TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_TinySet(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=1,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            optimizer=dict(
                type='AdamW',
                lr=0.01,
                betas=(0.9, 0.999),
                eps=1e-8,
                weight_decay=0.01),
            paramwise_cfg=dict(custom_keys={'decode_head': dict(
                lr_mult=10.)})),
        param_scheduler=dict(
            type='StagedPolyLR',
            stage_lengths=STAGE_EPOCHS,
            stage_factors=(1., .5, .25),
            warmup_iters=W,
            warmup_ratio=1e-2,
            poly_iters=P,
            power=1.,
            by_epoch=True,
            convert_to_iter_based=True),
        custom_hooks=[
            dict(type='StageOptimizerResetHook'),
            dict(type='WeightsOnlyCheckpointHook'), recorder
        ],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=True),
            logger=dict(type='LoggerHook', interval=100)),
        default_scope='mmseg',
        # a logger (and log file) of its own per runner, even within a second
        experiment_name=f'stage_reset_{uuid.uuid4().hex}',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='INFO')
    if resume_from is not None:
        cfg.update(load_from=resume_from, resume=True)
    return Runner(**cfg)


def _expected_lr(base, t):
    return spec6_lr(base, t, STAGE_ITERS, warmup=W, ratio=1e-2, poly=P)


def _log_text(runner):
    return ''.join(
        open(f).read()
        for f in glob.glob(os.path.join(runner.log_dir, '*.log')))


def test_runner_epochs_converted_and_reset_at_boundaries(tmp_path):
    rec = _Recorder()
    runner = _runner(tmp_path, 6, rec)
    runner.train()
    sched = runner.param_schedulers[0]
    assert isinstance(sched, StagedPolyLR) and not sched.by_epoch
    assert sched.stage_starts == [0, 8, 16]
    assert sorted(rec.rows) == list(range(24))
    for t, (lrs, step) in rec.rows.items():
        assert lrs[0] == pytest.approx(_expected_lr(0.01, t)), t
        # decoder group: lr_mult 10 preserved
        assert lrs[-1] == pytest.approx(_expected_lr(0.1, t)), t
        # AdamW step count restarts at every stage start, never elsewhere
        assert step == t % STAGE_ITERS, (t, step)
    text = _log_text(runner)
    assert 'iteration 8 begins stage 2' in text
    assert 'iteration 16 begins stage 3' in text
    assert text.count('begins stage') == 2

    # Resume at the boundary (epoch_2 = 8 iterations done): clears again,
    # since the checkpoint holds stage-1 moments.
    rec2 = _Recorder()
    r2 = _runner(
        tmp_path / 'r2', 3, rec2, resume_from=str(tmp_path / 'epoch_2.pth'))
    r2.train()
    assert sorted(rec2.rows) == list(range(8, 12))
    for t, (lrs, step) in rec2.rows.items():
        assert lrs[0] == pytest.approx(_expected_lr(0.01, t)), t
        assert step == t - 8, (t, step)
    assert _log_text(r2).count('begins stage') == 1

    # Resume inside stage 2 (epoch_3 = 12 iterations): moments kept.
    rec3 = _Recorder()
    r3 = _runner(
        tmp_path / 'r3', 4, rec3, resume_from=str(tmp_path / 'epoch_3.pth'))
    r3.train()
    assert sorted(rec3.rows) == list(range(12, 16))
    for t, (lrs, step) in rec3.rows.items():
        assert lrs[-1] == pytest.approx(_expected_lr(0.1, t)), t
        assert step == t - 8, (t, step)
    assert 'begins stage' not in _log_text(r3)

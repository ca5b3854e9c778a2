"""Training runs that go wrong: resume from a validation step, NaN losses
and weights, a second run on a busy work dir, a full disk after a new best
checkpoint, leftovers of interrupted saves (real tools/train.py runs on the
tiny quickstart config)."""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import time

import torch

from tests.helpers.tiny_configs import \
    tiny_quickstart_config as tiny_quickstart
from tests.helpers.training_runs import ENV, logged, train_cmd

PROBES = ("custom_imports = dict(imports=['geminifusion_mmseg', "
          "'tests.helpers.probe_hooks'], allow_failed_imports=False)\n")


def _train(cfg, work_dir, *args, check=True):
    run = subprocess.run(
        train_cmd(cfg, work_dir, *args),
        env=ENV,
        cwd=osp.dirname(cfg),
        capture_output=True,
        text=True)
    if check:
        assert run.returncode == 0, run.stderr[-3000:]
    return run


def _state(path):
    return torch.load(path, weights_only=True)['state_dict']


def test_resume_from_a_validation_step_is_bit_exact(tmp_path):
    # iter_4 is saved right before the validation at iteration 4 (and not
    # saved again after it: no best checkpoint)
    cfg = tiny_quickstart(
        tmp_path,
        'valstep',
        max_iters=8,
        interval=4,
        extra="train_cfg['val_interval'] = 4\n"
        "default_hooks['checkpoint']['save_best'] = None")
    straight = tmp_path / 'straight'
    _train(cfg, straight)
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(straight / 'iter_4.pth', resumed / 'iter_4.pth')
    _train(cfg, resumed, '--resume', str(resumed / 'iter_4.pth'))
    ref, out = logged(straight), logged(resumed)
    for it in range(5, 9):
        assert out[it]['loss'] == ref[it]['loss'], it
    a, b = _state(straight / 'iter_8.pth'), _state(resumed / 'iter_8.pth')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_training_at_once(tmp_path):
    # after iteration 4 the learning rate becomes far too high: the loss
    # is NaN a few steps later
    cfg = tiny_quickstart(
        tmp_path,
        'diverge',
        max_iters=40,
        interval=2,
        extra="param_scheduler = [dict(type='MultiStepLR', by_epoch=False, "
        "milestones=[4], gamma=1e9)]")
    wd = tmp_path / 'wd'
    run = _train(cfg, wd, check=False)
    assert run.returncode != 0
    err = run.stderr
    assert 'NonFiniteLossError: Non-finite loss at iteration' in err
    it = int(err.split('Non-finite loss at iteration ')[1].split()[0])
    assert 4 < it < 40
    # every logged iteration before it is finite; nothing after it ran
    log = logged(wd)
    assert max(k for k in log if k != 'val') < it
    assert all(log[i]['loss'] == log[i]['loss'] for i in range(1, it))
    assert 'loss = nan' in err or 'loss = inf' in err
    # the latest checkpoint is from before the NaN, and holds finite weights
    latest = (wd / 'last_checkpoint').read_text().strip()
    assert f'the last checkpoint is {latest}' in err
    step = int(osp.basename(latest)[len('iter_'):-len('.pth')])
    assert step < it
    assert all(v.isfinite().all() for v in _state(latest).values()
               if v.is_floating_point())
    assert not osp.exists(wd / 'train.lock')  # released on the exception


def test_nan_weights_are_never_saved_latest_or_best(tmp_path):
    param = 'decode_head.conv_seg.weight'
    cfg = tiny_quickstart(
        tmp_path,
        'poison',
        max_iters=8,
        interval=3,
        extra=PROBES + "train_cfg['val_interval'] = 4\n"
        "default_hooks['checkpoint']['max_keep_ckpts'] = 1\n"
        f"custom_hooks = [dict(type='PoisonWeightsHook', at_iter=4, "
        f"param={param!r})]\n")
    wd = tmp_path / 'wd'
    run = _train(cfg, wd, check=False)
    # iteration 4's loss was finite (NaN written after it); its validation
    # finds a first best, which must not be saved
    assert run.returncode != 0
    assert 'NonFiniteWeightsError' in run.stderr
    assert ('refusing to save the checkpoint of iteration 4 (epoch 0): '
            f"'{param}' holds 1 NaN/inf value(s)") in run.stderr
    assert f'the latest complete checkpoint stays {wd}/iter_3.pth' \
        in run.stderr
    assert sorted(n for n in os.listdir(wd)
                  if n.endswith('.pth')) == ['iter_3.pth']
    assert not glob.glob(str(wd / '.*.tmp'))


def test_stale_best_and_temporary_files_after_a_failed_save(tmp_path):
    # every validation is a new best; after the best of iteration 8 the
    # latest checkpoint is saved again, and that write fails (full disk)
    best_every_val = ("train_cfg['val_interval'] = 4\n"
                      "default_hooks['checkpoint']['save_best'] = 'iter'\n")
    hooks = "dict(type='IterAsMetricHook')"
    cfg = tiny_quickstart(
        tmp_path,
        'stale',
        max_iters=12,
        interval=4,
        extra=PROBES + best_every_val + f'custom_hooks = [{hooks}, '
        "dict(type='FailCheckpointWriteHook', at_iter=8, nth=2)]\n")
    wd = tmp_path / 'wd'
    run = _train(cfg, wd, check=False)
    assert run.returncode != 0 and 'File too large' in run.stderr
    # iter_8 still records best_iter_iter_4 as the best
    assert sorted(n for n in os.listdir(wd) if n.endswith('.pth')) == [
        'best_iter_iter_4.pth', 'best_iter_iter_8.pth', 'iter_4.pth',
        'iter_8.pth'
    ]
    # a SIGKILL during a save leaves our temporary file; others are kept
    for name in ('.iter_12.pth.k3x9_q2z.tmp', 'notes.tmp', '.notes.tmp'):
        (wd / name).write_text('x')
    cfg_ok = tiny_quickstart(
        tmp_path,
        'stale',
        max_iters=12,
        interval=4,
        extra=PROBES + best_every_val + f'custom_hooks = [{hooks}]\n')
    run = _train(cfg_ok, wd, '--resume')
    out = run.stdout + run.stderr
    assert f'removed {wd}/.iter_12.pth.k3x9_q2z.tmp' in out
    assert sorted(n for n in os.listdir(wd)
                  if 'notes' in n) == ['.notes.tmp', 'notes.tmp']
    assert f'{wd}/best_iter_iter_8.pth (iter 8.0000) is the best checkpoint' \
        in out
    # one best at the end: 4 (outdated when 8 was adopted) and 8 are gone
    assert sorted(n for n in os.listdir(wd)
                  if n.startswith('best_')) == ['best_iter_iter_12.pth']
    # latest and best follow the umask (0644 under 022), as torch.save's
    mask = os.umask(0)
    os.umask(mask)
    for name in ('best_iter_iter_12.pth', 'iter_12.pth', 'last_checkpoint'):
        assert os.stat(wd / name).st_mode & 0o777 == 0o666 & ~mask, name
    # a best checkpoint holds no optimizer state: resuming from it is refused
    best = str(wd / 'best_iter_iter_12.pth')
    run = _train(cfg_ok, wd, '--resume', best, check=False)
    assert run.returncode != 0
    assert f'cannot resume from {best}: it holds the weights only' \
        in run.stderr


def _wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, 'training ended too early'
        assert time.time() < deadline
        time.sleep(0.2)


def test_work_dir_lock_refuses_a_second_run_and_is_taken_over_when_stale(
        tmp_path):
    cfg = tiny_quickstart(tmp_path, 'lock', max_iters=400, interval=2)
    wd = tmp_path / 'wd'
    first = subprocess.Popen(
        train_cmd(cfg, wd),
        env=ENV,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: osp.isfile(wd / 'iter_2.pth'), first)
        first.send_signal(signal.SIGSTOP)  # alive, holding the lock, idle
        second = _train(cfg, wd, check=False)
        assert second.returncode != 0
        assert (f'work dir {wd} is in use by another training run: process '
                f'{first.pid} on host {socket.gethostname()}') \
            in second.stderr
        assert first.poll() is None  # the first run is untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert osp.isfile(wd / 'train.lock')  # left by the killed run
    # resume: the dead run's lock is taken over, with a warning
    latest = (wd / 'last_checkpoint').read_text().strip()
    end = int(osp.basename(latest)[len('iter_'):-len('.pth')]) + 2
    resumed = _train(cfg, wd, '--resume', '--cfg-options',
                     f'train_cfg.max_iters={end}')
    out = resumed.stdout + resumed.stderr
    assert f'took over the stale lock {wd}/train.lock of process ' \
        f'{first.pid} on host {socket.gethostname()}' in out
    assert osp.isfile(wd / f'iter_{end}.pth')
    assert not osp.exists(wd / 'train.lock')  # released at the end


def _tree(root):
    return sorted(
        (osp.relpath(osp.join(d, f), root), os.stat(osp.join(d, f)).st_mtime)
        for d, _, files in os.walk(root) for f in files)


def test_a_busy_work_dir_gets_no_new_files(tmp_path):
    """tools/train.py refuses a work dir whose lock a live process holds
    before building the Runner: no timestamped log folder, no config dump,
    nothing changed."""
    from geminifusion_mmseg.engine.hooks.work_dir_lock_hook import (
        LOCK_NAME, _process_start)
    cfg = tiny_quickstart(tmp_path, 'busy', max_iters=2, interval=2)
    wd = tmp_path / 'wd'
    wd.mkdir()
    (wd / 'iter_2.pth').write_bytes(b'the first run\'s checkpoint')
    owner = subprocess.Popen(['sleep', '300'])
    try:
        (wd / LOCK_NAME).write_text(
            json.dumps(
                dict(
                    pid=owner.pid,
                    host=socket.gethostname(),
                    process_start=_process_start(owner.pid),
                    started='2026-01-01 00:00:00',
                    command='tools/train.py first')))
        before = _tree(wd)
        second = _train(cfg, wd, check=False)
        assert second.returncode != 0
        assert (f'work dir {wd} is in use by another training run: process '
                f'{owner.pid} on host {socket.gethostname()}') \
            in second.stderr
        assert 'Traceback' not in second.stderr
        assert _tree(wd) == before
        assert owner.poll() is None
    finally:
        owner.kill()
        owner.wait()


def test_the_guards_are_on_in_every_config():
    """default_runtime.py turns them on; every zoo, quickstart and custom
    config inherits it."""
    from mmengine.config import Config

    from tests.helpers.tiny_configs import REPO
    configs = [
        c for c in sorted(glob.glob(osp.join(REPO, 'configs', '*', '*.py')))
        if '_base_' not in c
    ]
    assert len(configs) > 20
    for path in configs:
        hooks = Config.fromfile(path).default_hooks
        assert hooks['non_finite_loss']['type'] == 'NonFiniteLossHook', path
        assert hooks['work_dir_lock']['type'] == 'WorkDirLockHook', path
        assert hooks['checkpoint']['type'] == 'AtomicCheckpointHook', path
        assert hooks['checkpoint'].get('check_finite', True), path

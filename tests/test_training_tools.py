"""tools/train.py end to end: learning, kill + resume, 2-process gloo,
crash-safe checkpoints, early failure on a missing data root."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import pytest
import torch

from tests.helpers.tiny_configs import REPO
from tests.helpers.tiny_configs import \
    tiny_quickstart_config as tiny_quickstart
from tests.helpers.tiny_configs import write_tiny_config
from tests.helpers.training_runs import ENV, free_port, logged, train_cmd


def test_quickstart_config_learns(tmp_path):
    cfg = tiny_quickstart(tmp_path, 'learn', max_iters=80, interval=80)
    subprocess.run(
        train_cmd(cfg, tmp_path / 'wd'),
        check=True,
        env=ENV,
        cwd=tmp_path,
        capture_output=True)
    log = logged(tmp_path / 'wd')
    losses = [log[i]['loss'] for i in range(1, 81)]
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    for branch in ('rgb', 'depth', 'ens'):
        assert f'{branch}.loss_ce' in log[80]
    val = log['val'][-1]
    # 6 classes: predicting "wall" everywhere gives about 10, uniform
    # guessing less
    assert val['mIoU'] > 20, val
    assert 'rgb.mIoU' in val and 'depth.mIoU' in val
    best = tmp_path / 'wd' / 'best_mIoU_iter_80.pth'
    assert osp.isfile(best)

    # tools/test.py: table, ensemble and branch mIoU, panels per sample
    run = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), cfg,
        str(best), '--work-dir',
        str(tmp_path / 'test'), '--show-dir', 'panels'
    ],
                         env=ENV,
                         cwd=tmp_path,
                         capture_output=True,
                         text=True,
                         check=True)
    out = run.stdout + run.stderr
    assert 'per class results' in out and 'near box' in out
    assert 'mIoU by branch (ens = fused prediction)' in out
    assert 'rgb.mIoU' in out and 'depth.mIoU' in out
    panels = sorted(os.listdir(tmp_path / 'test' / 'panels'))
    assert len(panels) == 6  # one per val sample
    panel = cv2.imread(str(tmp_path / 'test' / 'panels' / panels[0]))
    assert panel.shape[1] == 4 * 64  # rgb | depth | ground truth | prediction


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = tiny_quickstart(tmp_path, 'resume', max_iters=16, interval=4)
    straight = tmp_path / 'straight'
    subprocess.run(
        train_cmd(cfg, straight),
        check=True,
        env=ENV,
        cwd=tmp_path,
        capture_output=True)

    killed = tmp_path / 'killed'
    proc = subprocess.Popen(
        train_cmd(cfg, killed),
        env=ENV,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    # kill between two checkpoints: after iter_8 is saved, before iter_12
    while not (osp.isfile(killed / 'iter_8.pth')
               and max(logged(killed).keys() - {'val'}, default=0) >= 10):
        assert proc.poll() is None, 'training ended before it was killed'
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not osp.isfile(killed / 'iter_16.pth')
    with open(killed / 'last_checkpoint') as f:
        assert f.read().strip().endswith(('iter_8.pth', 'iter_12.pth'))

    subprocess.run(
        train_cmd(cfg, killed, '--resume'),
        check=True,
        env=ENV,
        cwd=tmp_path,
        capture_output=True)
    ref, resumed = logged(straight), logged(killed)
    for it in range(9, 17):
        if it not in resumed:
            continue
        assert resumed[it]['loss'] == pytest.approx(
            ref[it]['loss'], rel=1e-5, abs=1e-6), it
    assert osp.isfile(killed / 'iter_16.pth')


def _no_temporary_files(work_dir):
    return not [n for n in os.listdir(work_dir) if n.endswith('.tmp')]


def test_interrupted_checkpoint_write_keeps_latest_loadable(tmp_path):
    # max_keep_ckpts=1: stock mmengine deletes iter_4 before writing iter_8
    cfg = tiny_quickstart(
        tmp_path,
        'faulty',
        max_iters=12,
        interval=4,
        extra="custom_imports = dict(imports=['geminifusion_mmseg', "
        "'tests.helpers.probe_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='FailCheckpointWriteHook', at_iter=8)]\n"
        "default_hooks['checkpoint']['max_keep_ckpts'] = 1")
    wd = tmp_path / 'wd'
    run = subprocess.run(
        train_cmd(cfg, wd),
        env=ENV,
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert run.returncode != 0
    assert 'File too large' in run.stderr  # the write failed half-way
    # the half-written file never became iter_8.pth; latest is still iter_4
    assert not osp.exists(wd / 'iter_8.pth') and _no_temporary_files(wd)
    with open(wd / 'last_checkpoint') as f:
        latest = f.read().strip()
    assert latest.endswith('iter_4.pth')
    ckpt = torch.load(latest, weights_only=True)
    assert ckpt['meta']['iter'] == 4
    # and training resumes from it
    cfg_ok = tiny_quickstart(
        tmp_path,
        'faulty',
        max_iters=12,
        interval=4,
        extra="default_hooks['checkpoint']"
        "['max_keep_ckpts'] = 1")
    subprocess.run(
        train_cmd(cfg_ok, wd, '--resume'),
        check=True,
        env=ENV,
        cwd=tmp_path,
        capture_output=True)
    assert osp.isfile(wd / 'iter_12.pth')
    assert sorted(n for n in os.listdir(wd) if n.endswith('.pth')) == [
        'best_mIoU_iter_12.pth', 'iter_12.pth'
    ]


def test_interrupted_best_checkpoint_write_keeps_previous_best(tmp_path):
    # every validation (iterations 4, 8, 12) is a new best by 'iter'
    best_every_val = ("train_cfg['val_interval'] = 4\n"
                      "default_hooks['checkpoint']['save_best'] = 'iter'\n")
    cfg = tiny_quickstart(
        tmp_path,
        'faulty_best',
        max_iters=12,
        interval=4,
        extra="custom_imports = dict(imports=['geminifusion_mmseg', "
        "'tests.helpers.probe_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='IterAsMetricHook'), "
        "dict(type='FailCheckpointWriteHook', at_iter=8, best=True)]\n" +
        best_every_val)
    wd = tmp_path / 'wd'
    run = subprocess.run(
        train_cmd(cfg, wd),
        env=ENV,
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert run.returncode != 0
    assert 'File too large' in run.stderr
    # stock mmengine deletes the previous best first, then writes in place
    assert not osp.exists(wd / 'best_iter_iter_8.pth')
    assert _no_temporary_files(wd)
    best = torch.load(wd / 'best_iter_iter_4.pth', weights_only=True)
    assert best['meta']['iter'] == 4
    with open(wd / 'last_checkpoint') as f:
        assert f.read().strip().endswith('iter_8.pth')  # saved before val
    # resume: the next best replaces best_iter_iter_4.pth
    cfg_ok = tiny_quickstart(
        tmp_path,
        'faulty_best',
        max_iters=12,
        interval=4,
        extra="custom_imports = dict(imports=['geminifusion_mmseg', "
        "'tests.helpers.probe_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='IterAsMetricHook')]\n" + best_every_val)
    subprocess.run(
        train_cmd(cfg_ok, wd, '--resume'),
        check=True,
        env=ENV,
        cwd=tmp_path,
        capture_output=True)
    assert osp.isfile(wd / 'best_iter_iter_12.pth')
    assert not osp.exists(wd / 'best_iter_iter_4.pth')


def test_two_process_gloo_training(tmp_path):
    cfg = tiny_quickstart(
        tmp_path,
        'dist',
        max_iters=8,
        interval=8,
        extra="custom_imports = dict(imports=['geminifusion_mmseg', "
        "'tests.helpers.probe_hooks'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='ParamChecksumHook')]")
    wd = tmp_path / 'wd'
    env = dict(ENV, PYTHON=sys.executable, PORT=str(free_port()))
    run = subprocess.run([
        'bash',
        osp.join(REPO, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir',
        str(wd)
    ],
                         env=env,
                         cwd=tmp_path,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert 'CPU distributed run: rank 0 of 2' in out
    assert sorted(os.listdir(wd)).count('iter_8.pth') == 1
    # rank 0 took the work-dir lock (rank 1 did not fight it), released it
    assert 'in use by another training run' not in out
    assert not osp.exists(wd / 'train.lock')
    ckpt = torch.load(wd / 'iter_8.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 8
    # both processes trained (world size 2) and ended with the same weights
    sums = [open(wd / f'checksum_rank{r}.txt').read().split() for r in (0, 1)]
    assert sums[0][0] == sums[1][0] == '2'
    assert float(sums[0][1]) == float(sums[1][1])
    local = sum(v.double().sum().item() for k, v in ckpt['state_dict'].items()
                if not k.endswith(('running_mean', 'running_var',
                                   'num_batches_tracked')))
    assert local == pytest.approx(float(sums[0][1]), rel=1e-9)


def test_missing_data_root_fails_before_training(tmp_path):
    cfg = write_tiny_config(
        str(tmp_path / 'nodata.py'),
        'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py',
        str(tmp_path / 'no' / 'such' / 'nyudv2'))
    run = subprocess.run(
        train_cmd(cfg, tmp_path / 'wd'),
        env=ENV,
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert run.returncode != 0
    assert str(tmp_path / 'no' / 'such' / 'nyudv2') in run.stderr
    assert 'Iter(train)' not in run.stdout + run.stderr
    assert 'Epoch(train)' not in run.stdout + run.stderr

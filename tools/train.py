"""Train a GeminiFusion RGB-D segmentor (the mmseg way).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--compile] [--cfg-options k=v ...]
                          [--launcher pytorch]

``--compile`` (the same as ``--cfg-options compile=True``) switches on the
training fast path: ``torch.compile`` of the backbone and the decode head
(:class:`geminifusion_mmseg.engine.hooks.TorchCompileHook`).
"""
import argparse
import logging
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmseg.registry import RUNNERS

import geminifusion_mmseg  # noqa: F401  (registers modules; mmcv-lite set-up)
from geminifusion_mmseg.engine.hooks import WorkDirBusyError
from geminifusion_mmseg.engine.hooks.work_dir_lock_hook import WorkDirLock
from geminifusion_mmseg.utils.launch import ensure_compile_hook, setup_launcher


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT if given, else from the latest checkpoint in '
        'the work dir (work_dir/last_checkpoint)')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (needs CUDA)')
    parser.add_argument(
        '--compile',
        action='store_true',
        default=False,
        help='training fast path: torch.compile the backbone and the decode '
        'head (cfg.compile=True unless the config sets a dict); eager, with '
        'a log line saying why, where it cannot apply')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _is_rank_zero(launcher: str) -> bool:
    """Whether this process will be rank 0 (the one that takes the lock),
    from the launcher's environment (no process group exists yet)."""
    if launcher == 'none':
        return True
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if key in os.environ:
            return os.environ[key] == '0'
    return True


def refuse_busy_work_dir(cfg: Config, launcher: str) -> None:
    """Stop before the Runner is built (it creates the timestamped log
    folder and dumps the config into the work dir) when another live run
    holds ``work_dir/train.lock``; the WorkDirLockHook still takes the lock
    when training starts. Nothing is written here."""
    hooks = list((cfg.get('default_hooks', None) or {}).values())
    hooks += list(cfg.get('custom_hooks', None) or [])
    types = [h.get('type') for h in hooks if isinstance(h, dict)]
    if not {'WorkDirLockHook', 'geminifusion_mmseg.WorkDirLockHook'} & \
            set(types):
        return
    if not _is_rank_zero(launcher):
        return  # rank 0 may hold the lock already: its own run
    try:
        WorkDirLock(osp.abspath(cfg.work_dir)).check()
    except WorkDirBusyError as e:
        raise SystemExit(f'WorkDirBusyError: {e}')


def main():
    args = parse_args()
    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if not torch.cuda.is_available():
            raise SystemExit('--amp needs a CUDA GPU (AmpOptimWrapper); this '
                             'machine has none. Train in fp32 without --amp.')
        if cfg.optim_wrapper.type == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.compile and not cfg.get('compile', None):
        cfg.compile = True
    ensure_compile_hook(cfg)

    refuse_busy_work_dir(cfg, args.launcher)
    setup_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()

"""Launcher set-up shared by the train and test tools."""
import os

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` (and the process group) for ``launcher``.

    mmengine's PyTorch launcher calls ``torch.cuda.set_device``
    unconditionally, so multi-process runs on CPU-only machines fail there.
    For ``launcher='pytorch'`` without CUDA this initialises the process
    group itself with the gloo backend from the torchrun environment
    variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and selects the
    CPU-capable DDP wrapper; mmengine then finds the group initialised and
    skips its own set-up. With CUDA, nothing changes.

    Args:
        cfg (Config): The run's config; ``launcher``, ``env_cfg`` and
            ``model_wrapper_cfg`` are updated in place.
        launcher (str): 'none', 'pytorch', 'slurm' or 'mpi'.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA; on a CPU-only machine use '
            '--launcher pytorch (torchrun / tools/dist_train.sh), which runs '
            'with the gloo backend')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUCompatibleDistributedDataParallel')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
        print_log(
            f'CPU distributed run: rank {dist.get_rank()} of '
            f'{dist.get_world_size()} (gloo, LOCAL_RANK='
            f'{os.environ.get("LOCAL_RANK")})',
            logger='current')


def ensure_compile_hook(cfg: Config) -> None:
    """Register ``TorchCompileHook`` when ``cfg.compile`` is set and the
    config (not inheriting ``configs/_base_/default_runtime.py``) lacks it,
    so ``compile`` compiles the backbone and head rather than mmengine's
    whole ``train_step``.

    Args:
        cfg (Config): Updated in place (``custom_hooks``).
    """
    if not cfg.get('compile', None):
        return
    hooks = list((cfg.get('default_hooks', None) or {}).values())
    hooks += list(cfg.get('custom_hooks', None) or [])
    if any(
            isinstance(h, dict) and h.get('type') in ('TorchCompileHook',
                                                      'mmseg.TorchCompileHook')
            for h in hooks):
        return
    cfg.custom_hooks = list(cfg.get('custom_hooks', None)
                            or []) + [dict(type='TorchCompileHook')]

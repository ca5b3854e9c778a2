"""Hooks that probe or break a training run (for tests).

Imported by test configs through ``custom_imports``.
"""
import io
import os.path as osp
import resource
import signal

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


@HOOKS.register_module()
class FailCheckpointWriteHook(Hook):
    """Make the write of one checkpoint fail half-way, as a full disk does.

    For the checkpoint saved after iteration ``at_iter`` (the best one if
    ``best``, else the latest one), the process is allowed to write at most
    half of its bytes to any file (``RLIMIT_FSIZE``, with ``SIGXFSZ``
    ignored): the operating system stops the write with ``OSError: [Errno
    27] File too large`` when part of the file is on disk, and the run
    dies. ``nth`` picks which save of that kind at ``at_iter`` fails (2:
    the latest checkpoint saved again after a new best)."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int, best: bool = False, nth: int = 1):
        self.at_iter = at_iter
        self.best = best
        self.nth = nth
        self._seen = 0

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        is_best = 'optimizer' not in checkpoint  # best: save_optimizer=False
        if checkpoint['meta']['iter'] != self.at_iter or is_best != self.best:
            return
        self._seen += 1
        if self._seen != self.nth:
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (buffer.tell() // 2, hard))


@HOOKS.register_module()
class IterAsMetricHook(Hook):
    """Add ``metrics['iter'] = runner.iter`` to every validation result,
    before the checkpoint hook sees it: with ``save_best='iter'`` every
    validation makes a new best checkpoint."""

    priority = 'ABOVE_NORMAL'

    def after_val_epoch(self, runner, metrics=None) -> None:
        if metrics is not None:
            metrics['iter'] = runner.iter


@HOOKS.register_module()
class ParamChecksumHook(Hook):
    """After training, each rank writes ``checksum_rank{r}.txt`` to the work
    dir: the world size and the float64 sum of every parameter."""

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        total = sum(p.detach().double().sum().item()
                    for p in model.parameters())
        path = osp.join(runner.work_dir, f'checksum_rank{get_rank()}.txt')
        with open(path, 'w') as f:
            f.write(f'{get_world_size()} {total!r}\n')


@HOOKS.register_module()
class PoisonWeightsHook(Hook):
    """After training iteration ``at_iter`` (counted from 1), write NaN into
    the first element of parameter ``param``: what a diverging update does,
    at a known place."""

    priority = 'HIGHEST'

    def __init__(self, at_iter: int, param: str):
        self.at_iter = at_iter
        self.param = param

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 != self.at_iter:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        with torch.no_grad():
            dict(model.named_parameters())[self.param].view(-1)[0] = float(
                'nan')

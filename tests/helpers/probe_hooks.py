"""Hooks that probe or break a training run (for tests).

Imported by test configs through ``custom_imports``.
"""
import os.path as osp

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS


class _Unpicklable:

    def __reduce__(self):
        raise RuntimeError('injected failure while writing the checkpoint')


@HOOKS.register_module()
class FailCheckpointWriteHook(Hook):
    """Break the checkpoint written after iteration ``at_iter``: an object
    whose pickling raises is added, so ``torch.save`` has already written
    part of the file when the run dies."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int):
        self.at_iter = at_iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint['meta']['iter'] == self.at_iter:
            checkpoint['zzz_injected'] = _Unpicklable()


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

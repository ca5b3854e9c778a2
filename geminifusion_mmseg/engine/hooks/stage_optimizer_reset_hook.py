"""Reset the optimizer state at each training stage (docs/training.md).

The release builds a fresh AdamW at the start of every stage, so the first
moments, second moments and step counts start again from zero. This hook
does the same inside one mmengine run: at the first iteration of every stage
after the first it clears the optimizer's per-parameter state (the learning
rates are the scheduler's business, see
:class:`~geminifusion_mmseg.engine.schedulers.StagedPolyLR`).

The stage boundaries are read from the :class:`StagedPolyLR` scheduler(s) of
the runner, so they are defined once, in ``param_scheduler``.
"""
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS

from ..schedulers.staged_poly_lr import StagedPolyLR

DATA_BATCH = Optional[Sequence[dict]]


def _iter_schedulers(param_schedulers):
    if param_schedulers is None:
        return
    if isinstance(param_schedulers, dict):
        for value in param_schedulers.values():
            yield from _iter_schedulers(value)
    elif isinstance(param_schedulers, (list, tuple)):
        for value in param_schedulers:
            yield from _iter_schedulers(value)
    else:
        yield param_schedulers


@HOOKS.register_module()
class StageOptimizerResetHook(Hook):
    """Clear the optimizer state (AdamW moments, step counts) per stage.

    At ``before_train_iter`` of the iteration where a stage after the first
    begins, every optimizer of the runner loses its per-parameter state, as
    if a new AdamW had been built. Hyper-parameters (betas, eps, weight
    decay, the lr that the scheduler has just set) are kept.

    The hook is stateless: it acts when ``runner.iter`` equals a stage start,
    so a run resumed from a checkpoint saved exactly at the boundary (the
    stage's first iteration not yet done) clears the old stage's moments,
    and a run resumed later in a stage keeps its moments.

    Args:
        verbose (bool): Log a line at ``before_train`` listing the
            boundaries found. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, verbose: bool = True):
        self.verbose = verbose
        self._boundaries: Optional[Dict[int, int]] = None

    @staticmethod
    def find_boundaries(runner) -> Dict[int, int]:
        """Map each stage start after the first (iteration) to its stage.

        Raises:
            RuntimeError: the runner has no :class:`StagedPolyLR`, or one that
                still counts in epochs.
        """
        boundaries: Dict[int, int] = {}
        found = False
        for scheduler in _iter_schedulers(runner.param_schedulers):
            if not isinstance(scheduler, StagedPolyLR):
                continue
            found = True
            if scheduler.by_epoch:  # pragma: no cover - refused at build
                raise RuntimeError(
                    'StageOptimizerResetHook needs an iteration-based '
                    'StagedPolyLR (use convert_to_iter_based=True)')
            for stage, start in enumerate(scheduler.stage_starts):
                if stage > 0:
                    boundaries.setdefault(start, stage)
        if not found:
            raise RuntimeError(
                'StageOptimizerResetHook found no StagedPolyLR in '
                'runner.param_schedulers: it takes the stage boundaries '
                'from that scheduler (param_scheduler=dict('
                "type='StagedPolyLR', ...)).")
        return boundaries

    def _get_boundaries(self, runner) -> Dict[int, int]:
        if self._boundaries is None:
            self._boundaries = self.find_boundaries(runner)
        return self._boundaries

    def before_train(self, runner) -> None:
        # Read after the schedulers were built and a resume restored them.
        self._boundaries = self.find_boundaries(runner)
        if self.verbose:
            runner.logger.info(
                'StageOptimizerResetHook: the optimizer state will be reset '
                f'at iterations {sorted(self._boundaries)} (stage starts)')

    @staticmethod
    def _optimizers(runner) -> List:
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, OptimWrapperDict):
            return [w.optimizer for w in wrapper.values()]
        return [wrapper.optimizer]

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        boundaries = self._get_boundaries(runner)
        it = runner.iter
        if it not in boundaries:
            return
        cleared = 0
        for optimizer in self._optimizers(runner):
            cleared += len(optimizer.state)
            optimizer.state.clear()
        runner.logger.info(
            f'StageOptimizerResetHook: iteration {it} begins stage '
            f'{boundaries[it] + 1}: optimizer state cleared (moments and '
            f'step counts of {cleared} parameters), as a fresh AdamW')

"""The published staged "poly with warmup" learning-rate schedule
(docs/training.md).

The release trains in stages (3 x 100 epochs). Each stage builds a fresh
``PolyWarmupAdamW`` whose learning rate, before the optimizer step number
``i`` of that stage (``i`` counted from 0), is the group's base lr times::

    1 - (1 - i / warmup_iters) * (1 - warmup_ratio)   for i < warmup_iters
    (1 - i / poly_iters) ** power                     for i < poly_iters
    unchanged (the last value set)                    afterwards

with ``warmup_iters=1500``, ``warmup_ratio=1e-6``, ``poly_iters=40000``,
``power=1``, and a base lr per stage of 6e-5, 3e-5, 1.5e-5 (the factors
1, 0.5, 0.25 of the optimizer lr here; the decoder group has lr x10).

Note the schedule is NOT continuous at ``i = warmup_iters``: the warmup
reaches ``1 - (1/1500)(1 - 1e-6) = 0.99933`` at i = 1499 and would reach 1 at
i = 1500, but the poly branch counts from the start of the stage, not from
the end of the warmup, so at i = 1500 the factor is
``1 - 1500/40000 = 0.9625`` (a 3.7 % drop). This is the release's behaviour
and is reproduced as is.

:class:`StagedPolyLR` computes this factor in closed form from the
scheduler's step count, so resuming (mmengine restores ``last_step`` from the
scheduler's state dict) lands on exactly the same value. The optimizer reset
at each stage start is done by
:class:`~geminifusion_mmseg.engine.hooks.StageOptimizerResetHook`, which reads
the stage boundaries from this scheduler.
"""
from typing import List, Sequence, Union

from mmengine.optim.scheduler.param_scheduler import INF
from mmseg.registry import PARAM_SCHEDULERS

from .closed_form_lr import ClosedFormIterLR

__all__ = ['StagedPolyLR', 'staged_poly_factor']

#: Stage lengths of the release: 3 x 100 epochs.
DEFAULT_STAGE_LENGTHS = (100, 100, 100)


def _in_stage_factor(i: int, warmup_iters: int, warmup_ratio: float,
                     poly_iters: int, power: float) -> float:
    """Factor of the stage's lr at iteration ``i`` since the stage began."""
    if i < 0:
        raise ValueError(f'iteration within a stage must be >= 0, got {i}')
    last = max(warmup_iters, poly_iters)
    if i >= last:
        # The release stops updating the lr: it keeps the last value set,
        # the one of iteration ``last - 1`` (or the group lr if never set).
        if last == 0:
            return 1.0
        i = last - 1
    if i < warmup_iters:
        return 1. - (1. - i / warmup_iters) * (1. - warmup_ratio)
    return (1. - i / poly_iters)**power


def staged_poly_factor(step: int,
                       stage_lengths: Sequence[int],
                       stage_factors: Sequence[float],
                       warmup_iters: int = 1500,
                       warmup_ratio: float = 1e-6,
                       poly_iters: int = 40000,
                       power: float = 1.0) -> float:
    """Factor of the optimizer's base lr at ``step`` (0-based, iterations).

    ``step`` counts from the beginning of the first stage. Past the end of
    the last stage the last stage goes on (its factor stays flat once its
    poly part is over).
    """
    if step < 0:
        raise ValueError(f'step must be >= 0, got {step}')
    start = 0
    stage = 0
    for k, length in enumerate(stage_lengths[:-1]):
        if step >= start + length:
            start += length
            stage = k + 1
        else:
            break
    return stage_factors[stage] * _in_stage_factor(
        step - start, warmup_iters, warmup_ratio, poly_iters, power)


@PARAM_SCHEDULERS.register_module()
class StagedPolyLR(ClosedFormIterLR):
    """Staged poly learning rate with linear warmup, as in the release.

    Every parameter group keeps its own base lr (``initial_lr``, e.g. the
    decoder's lr x10 from ``paramwise_cfg``); the scheduler sets
    ``lr = initial_lr * stage_factor[k] * in_stage_factor(i)`` where ``k`` is
    the current stage and ``i`` the iteration since stage ``k`` began.

    ``stage_lengths`` are in the scheduler's unit: epochs with
    ``by_epoch=True`` (then ``convert_to_iter_based=True`` is required and
    they are converted with the train dataloader length, like ``begin`` and
    ``end``), iterations with ``by_epoch=False``. ``warmup_iters`` and
    ``poly_iters`` are always iterations (they are not converted).

    Args:
        optimizer (Optimizer or BaseOptimWrapper): Wrapped optimizer.
        stage_lengths (Sequence[int | float]): Length of each stage.
            Defaults to (100, 100, 100) (epochs).
        stage_factors (Sequence[float]): Factor of the base lr of each
            stage. Defaults to (1., 0.5, 0.25) (6e-5, 3e-5, 1.5e-5 for an
            optimizer lr of 6e-5).
        warmup_iters (int): Warmup length in iterations. Defaults to 1500.
        warmup_ratio (float): Relative lr at the first warmup iteration.
            Defaults to 1e-6.
        poly_iters (int): Iterations of the poly decay, counted from the
            stage start. Defaults to 40000.
        power (float): Power of the poly decay. Defaults to 1.0.
        begin (int): Step at which the first stage begins. Defaults to 0.
        end (int): Step at which to stop updating. Defaults to INF.
        last_step (int): See :class:`mmengine.optim._ParamScheduler`.
        by_epoch (bool): Whether the lengths are in epochs. Defaults to
            True; then build it with ``convert_to_iter_based=True``.
        verbose (bool): Print each update. Defaults to False.
    """
    length_names = ('the stage lengths (warmup_iters and poly_iters are '
                    'always iterations)')

    def __init__(self,
                 optimizer,
                 stage_lengths: Sequence[Union[int,
                                               float]] = DEFAULT_STAGE_LENGTHS,
                 stage_factors: Sequence[float] = (1., 0.5, 0.25),
                 warmup_iters: int = 1500,
                 warmup_ratio: float = 1e-6,
                 poly_iters: int = 40000,
                 power: float = 1.0,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = True,
                 verbose: bool = False):
        self.require_iteration_based(by_epoch)
        stage_lengths = [int(length) for length in stage_lengths]
        stage_factors = [float(f) for f in stage_factors]
        if not stage_lengths:
            raise ValueError('stage_lengths must not be empty')
        if len(stage_lengths) != len(stage_factors):
            raise ValueError(
                f'stage_lengths ({len(stage_lengths)}) and stage_factors '
                f'({len(stage_factors)}) must have the same length')
        if any(length <= 0 for length in stage_lengths):
            raise ValueError(
                f'stage lengths must be positive, got {stage_lengths}')
        if warmup_iters < 0 or poly_iters < 0:
            raise ValueError('warmup_iters and poly_iters must be >= 0')
        if not 0. <= warmup_ratio <= 1.:
            raise ValueError(f'warmup_ratio must be in [0, 1], '
                             f'got {warmup_ratio}')
        self.stage_lengths = stage_lengths
        self.stage_factors = stage_factors
        self.warmup_iters = int(warmup_iters)
        self.warmup_ratio = float(warmup_ratio)
        self.poly_iters = int(poly_iters)
        self.power = float(power)
        super().__init__(optimizer, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def lengths_in_iters(cls, kwargs: dict, epoch_length: int) -> dict:
        """``stage_lengths`` (default (100, 100, 100)) from epochs to
        iterations."""
        stage_lengths = kwargs.get('stage_lengths', DEFAULT_STAGE_LENGTHS)
        return dict(
            kwargs,
            stage_lengths=[int(n * epoch_length) for n in stage_lengths])

    @property
    def stage_starts(self) -> List[int]:
        """Global step (iteration) at which each stage begins."""
        starts = [self.begin]
        for length in self.stage_lengths[:-1]:
            starts.append(starts[-1] + length)
        return starts

    def factor_at(self, step: int) -> float:
        """Factor of the base lr at ``step`` steps after ``begin``."""
        return staged_poly_factor(step, self.stage_lengths, self.stage_factors,
                                  self.warmup_iters, self.warmup_ratio,
                                  self.poly_iters, self.power)

    def _get_value(self):
        """Closed form: base lr of each group times the staged factor."""
        factor = self.factor_at(self.last_step)
        return [base * factor for base in self.base_values]

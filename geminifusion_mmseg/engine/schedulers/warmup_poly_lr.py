"""The "warmup poly" learning rate of the DeLiVER code line.

CMNeXt's ``WarmupPolyLR`` (``semseg/schedulers.py``, used by the GeminiFusion
DeLiVER branch with ``warmup='linear'``): before optimizer step ``i``
(counted from 0) every parameter group's lr is its base lr times::

    warmup_ratio + (1 - warmup_ratio) * i / warmup_iters    i < warmup_iters
    (1 - (i - warmup_iters) / (max_iters - warmup_iters)) ** power  after

The branch sets ``warmup_iters = 10 * iters_per_epoch`` and ``max_iters =
(epochs + 1) * iters_per_epoch`` with ``iters_per_epoch = len(train set) //
batch // GPUs``, so the lr never reaches 0 within the ``epochs`` trained.

mmengine's ``LinearLR`` + ``PolyLR`` chain cannot give this exactly (the
poly part would start from the warmup's last value, ``warmup_ratio + (1 -
warmup_ratio) * (W - 1) / W``, not from 1), hence this closed-form scheduler,
which also resumes exactly (the factor depends on the step count only).
"""
from mmengine.optim.scheduler.param_scheduler import INF
from mmseg.registry import PARAM_SCHEDULERS

from .closed_form_lr import ClosedFormIterLR

__all__ = ['WarmupPolyLR', 'warmup_poly_factor']


def warmup_poly_factor(step: int,
                       warmup_iters: int,
                       max_iters: int,
                       warmup_ratio: float = 0.1,
                       power: float = 0.9) -> float:
    """Factor of the base lr before optimizer step ``step`` (0-based)."""
    if step < 0:
        raise ValueError(f'step must be >= 0, got {step}')
    if step < warmup_iters:
        return warmup_ratio + (1. - warmup_ratio) * step / warmup_iters
    progress = (step - warmup_iters) / (max_iters - warmup_iters)
    return max(1. - progress, 0.)**power


@PARAM_SCHEDULERS.register_module()
class WarmupPolyLR(ClosedFormIterLR):
    """Linear warmup from ``warmup_ratio`` then poly decay to 0 at
    ``max_iters``, in closed form (module docstring).

    Every group keeps its own base lr (e.g. the decode head's lr x10 from
    ``paramwise_cfg``). Lengths are in the scheduler's unit: iterations
    with ``by_epoch=False``, or epochs with ``by_epoch=True`` and
    ``convert_to_iter_based=True`` (converted with the train dataloader's
    length).

    Args:
        optimizer (Optimizer or BaseOptimWrapper): Wrapped optimizer.
        warmup_iters (int | float): Warmup length.
        max_iters (int | float): Where the poly factor reaches 0.
        warmup_ratio (float): Factor at step 0. Defaults to 0.1.
        power (float): Poly power. Defaults to 0.9.
        begin, end, last_step, by_epoch, verbose: as
            :class:`mmengine.optim._ParamScheduler` (``by_epoch`` defaults
            to False).
    """
    length_names = 'warmup_iters and max_iters'

    def __init__(self,
                 optimizer,
                 warmup_iters,
                 max_iters,
                 warmup_ratio: float = 0.1,
                 power: float = 0.9,
                 begin: int = 0,
                 end: int = INF,
                 last_step: int = -1,
                 by_epoch: bool = False,
                 verbose: bool = False):
        self.require_iteration_based(by_epoch)
        if not 0 <= warmup_iters < max_iters:
            raise ValueError('WarmupPolyLR needs 0 <= warmup_iters < '
                             f'max_iters, got warmup_iters={warmup_iters}, '
                             f'max_iters={max_iters}')
        if not 0. <= warmup_ratio <= 1.:
            raise ValueError(
                f'warmup_ratio must be in [0, 1], got {warmup_ratio}')
        self.warmup_iters = int(warmup_iters)
        self.max_iters = int(max_iters)
        self.warmup_ratio = float(warmup_ratio)
        self.power = float(power)
        super().__init__(optimizer, begin, end, last_step, by_epoch, verbose)

    @classmethod
    def lengths_in_iters(cls, kwargs: dict, epoch_length: int) -> dict:
        """``warmup_iters`` and ``max_iters`` from epochs to iterations."""
        return {
            k:
            int(v * epoch_length) if k in ('warmup_iters', 'max_iters') else v
            for k, v in kwargs.items()
        }

    def _get_value(self):
        factor = warmup_poly_factor(self.last_step - self.begin,
                                    self.warmup_iters, self.max_iters,
                                    self.warmup_ratio, self.power)
        return [base * factor for base in self.base_values]

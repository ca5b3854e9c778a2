"""Stop training at the first NaN or inf loss; find non-finite weights."""
import math
import os.path as osp
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

__all__ = [
    'NonFiniteLossError', 'NonFiniteLossHook', 'NonFiniteWeightsError',
    'find_non_finite', 'last_checkpoint'
]


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or inf (the message names the iteration
    and the loss terms)."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training as soon as a loss is NaN or inf.

    After every training iteration the logged loss terms (the model's
    ``train_step`` outputs whose name contains ``loss``, e.g. ``loss``,
    ``rgb.loss_ce``, ``ens.loss_ce``) are checked; the first non-finite
    one raises :class:`NonFiniteLossError` naming the iteration (as the log
    counts it, from 1), the epoch and every non-finite term, before any
    later hook (the checkpoint hook) runs. The last saved checkpoint is
    therefore the last one with finite weights. On by default in
    ``configs/_base_/default_runtime.py``
    (``default_hooks.non_finite_loss``); switch it off with
    ``default_hooks.non_finite_loss=None``.

    With several processes each checks its own losses; one NaN stops its
    process, and the launcher (torchrun) then stops the others.

    Args:
        keys (Sequence[str], optional): The output names to check. Defaults
            to every output whose name contains ``'loss'``.
        interval (int): Check every ``interval`` iterations. Defaults to 1
            (the values are already on the host: the logger reads them).
    """

    priority = 'ABOVE_NORMAL'  # before the logger and the checkpoint hook

    def __init__(self,
                 keys: Optional[Sequence[str]] = None,
                 interval: int = 1) -> None:
        if interval < 1:
            raise ValueError(f'NonFiniteLossHook: interval must be >= 1, got '
                             f'{interval}')
        self.keys = None if keys is None else tuple(keys)
        self.interval = interval

    def _checked(self, outputs: dict) -> dict:
        if self.keys is None:
            return {k: v for k, v in outputs.items() if 'loss' in k}
        missing = [k for k in self.keys if k not in outputs]
        if missing:
            raise KeyError(f'NonFiniteLossHook: keys {missing} are not among '
                           f'the training outputs {sorted(outputs)}')
        return {k: outputs[k] for k in self.keys}

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Raise :class:`NonFiniteLossError` if a loss is NaN or inf."""
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        bad = {}
        for key, value in self._checked(outputs).items():
            value = float(value.detach() if torch.is_tensor(value) else value)
            if not math.isfinite(value):
                bad[key] = value
        if not bad:
            return
        last = last_checkpoint(runner.work_dir)
        terms = ', '.join(f'{k} = {v}' for k, v in bad.items())
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}): {terms}. Training is stopped before this '
            'iteration is saved; ' +
            (f'the last checkpoint is {last}. '
             if last else 'no checkpoint was saved yet. ') +
            'Usual causes: a learning rate too high for this batch size '
            '(lower optim_wrapper.optimizer.lr, or add clip_grad to '
            'optim_wrapper), NaN/inf in the input data, or labels outside '
            'the classes. Resume from the last checkpoint with '
            '`tools/train.py CONFIG --resume --cfg-options '
            'optim_wrapper.optimizer.lr=...`; switch this check off with '
            '--cfg-options default_hooks.non_finite_loss=None.')


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, if any."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


class NonFiniteWeightsError(FloatingPointError):
    """A checkpoint would hold NaN or inf weights (the message names the
    first such tensor)."""


def find_non_finite(
        state_dict: Dict[str, Any]) -> Optional[Tuple[str, int, int, int]]:
    """The first floating-point tensor of ``state_dict`` with NaN or inf.

    Args:
        state_dict (dict): Name -> tensor (other values are skipped).

    Returns:
        tuple | None: (name, number of non-finite values, its number of
        values, number of tensors with non-finite values), or None if all
        are finite.
    """
    first, tensors = None, 0
    for key, value in state_dict.items():
        if not (torch.is_tensor(value) and value.is_floating_point()):
            continue
        finite = torch.isfinite(value)
        if bool(finite.all()):
            continue
        tensors += 1
        if first is None:
            first = (key, int((~finite).sum()), value.numel())
    return None if first is None else first + (tensors, )

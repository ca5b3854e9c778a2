"""Save the torch RNG state with checkpoints, restore it on resume, and keep
validation from drawing from the training RNG."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS


def _rng_states() -> dict:
    """The torch (CPU and CUDA), numpy and Python RNG states."""
    state = dict(
        cpu=torch.get_rng_state(),
        numpy=np.random.get_state(),
        python=random.getstate())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_states(state: dict) -> None:
    torch.set_rng_state(state['cpu'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    if 'numpy' in state:
        np.random.set_state(state['numpy'])
    if 'python' in state:
        random.setstate(state['python'])


@HOOKS.register_module()
class ResumeRNGStateHook(Hook):
    """Make a resumed run draw the same random numbers as an uninterrupted one.

    mmengine re-seeds a resumed run and replays the data pipeline up to the
    checkpoint (so numpy/python RNG, used by the transforms, end up where
    they were), but the torch RNG used by the model (stochastic depth,
    dropout) is not restored. This hook

    * stores ``torch.get_rng_state()`` (and the CUDA states) in the
      checkpoint under ``meta['rng_state']`` (tensors only, loadable
      weights-only) and sets it back right before the first training
      iteration after a resume;
    * keeps validation during training from consuming the training RNG:
      the torch, numpy and Python states are saved before validation and
      restored after it. A checkpoint saved at a validation step (before
      the validation runs) therefore resumes exactly as the uninterrupted
      run continues after its validation.

    Resuming from a checkpoint without optimizer state (a ``best_*``
    file) is refused (:meth:`after_load_checkpoint`). Multi-process runs
    save rank 0's state only, so it is restored only when the world size
    is 1 (see docs/training.md for what is bit-exact).
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._pending: Optional[dict] = None
        self._before_val: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # during validation (a best checkpoint, or the latest saved again)
        # the state training continues with is the one before validation
        now = self._before_val or _rng_states()
        state = dict(cpu=now['cpu'])
        if 'cuda' in now:
            state['cuda'] = now['cuda']
        checkpoint.setdefault('meta', {})['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the RNG state for the first iteration; refuse to resume
        from a checkpoint without optimizer state.

        Raises:
            ValueError: When resuming (config ``resume=True``) from a
                checkpoint that holds no ``optimizer`` (a ``best_*`` file):
                the optimizer's moments and the learning-rate schedule
                would silently start again.
        """
        if runner.cfg.get('resume', False) and 'optimizer' not in checkpoint:
            path = runner.cfg.get('load_from', None) or 'the checkpoint'
            raise ValueError(
                f'cannot resume from {path}: it holds the weights only, no '
                'optimizer or learning-rate scheduler state (best_* '
                'checkpoints are saved so); resuming from it would restart '
                "the optimizer's moments and the schedule. Resume from an "
                'iter_*.pth / epoch_*.pth checkpoint (work_dir/'
                'last_checkpoint names the latest), or start a new schedule '
                'from these weights with --cfg-options load_from=... '
                '(without --resume).')
        state = checkpoint.get('meta', {}).get('rng_state')
        if state is not None and get_world_size() == 1:
            self._pending = state

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self._pending is None:
            return
        _set_rng_states(self._pending)
        self._pending = None
        print_log(
            'restored the torch RNG state of the resumed checkpoint',
            logger='current')

    def before_val(self, runner) -> None:
        self._before_val = _rng_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            _set_rng_states(self._before_val)
            self._before_val = None

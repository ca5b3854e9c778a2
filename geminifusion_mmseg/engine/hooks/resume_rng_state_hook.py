"""Save the torch RNG state with checkpoints and restore it on resume."""
from typing import Optional

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ResumeRNGStateHook(Hook):
    """Make a resumed run draw the same random numbers as an uninterrupted one.

    mmengine re-seeds a resumed run and replays the data pipeline up to the
    checkpoint (so numpy/python RNG, used by the transforms, end up where
    they were), but the torch RNG used by the model (stochastic depth,
    dropout) is not restored. This hook stores ``torch.get_rng_state()``
    (and the CUDA states) in the checkpoint under ``meta['rng_state']``
    (tensors only, loadable weights-only) and sets it back right before the
    first training iteration after a resume. Multi-process runs save rank
    0's state only, so it is restored only when the world size is 1.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(cpu=torch.get_rng_state())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault('meta', {})['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('rng_state')
        if state is not None and get_world_size() == 1:
            self._pending = state

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending['cpu'])
        if 'cuda' in self._pending and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._pending['cuda'])
        self._pending = None
        print_log(
            'restored the torch RNG state of the resumed checkpoint',
            logger='current')

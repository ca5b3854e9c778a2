"""Make mmengine checkpoints loadable with torch.load(weights_only=True)."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmseg.registry import HOOKS

_MARK = '__history_buffer__'


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Store the message hub's ``HistoryBuffer`` objects as plain arrays.

    mmengine pickles each ``HistoryBuffer`` of the message hub (the logged
    losses, used to resume smoothed logs) together with its statistics
    methods, which torch >= 2.6 refuses under ``weights_only=True`` unless
    ``builtins.getattr`` is allow-listed (which would let a checkpoint call
    methods). This hook writes each buffer as
    ``{'__history_buffer__': True, 'log_history': ndarray,
    'count_history': ndarray, 'max_length': int}`` when a checkpoint is
    saved, and rebuilds the ``HistoryBuffer`` when it is loaded, so a
    checkpoint holds only tensors, builtins and numpy data.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars: Optional[dict] = checkpoint.get('message_hub',
                                                 {}).get('log_scalars')
        if not scalars:
            return
        for key, buf in list(scalars.items()):
            if isinstance(buf, HistoryBuffer):
                log, count = buf.data
                scalars[key] = {
                    _MARK: True,
                    'log_history': log,
                    'count_history': count,
                    'max_length': buf.max_length,
                }

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        scalars: Optional[dict] = checkpoint.get('message_hub',
                                                 {}).get('log_scalars')
        if not scalars:
            return
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and value.get(_MARK):
                scalars[key] = HistoryBuffer(
                    list(value['log_history']), list(value['count_history']),
                    int(value['max_length']))

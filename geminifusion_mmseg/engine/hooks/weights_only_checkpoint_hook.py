"""Make mmengine checkpoints loadable by a plain ``torch.load(path)``."""
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmseg.registry import HOOKS

__all__ = ['WeightsOnlyCheckpointHook', 'to_portable']

_MARK = '__history_buffer__'


def to_portable(obj: Any) -> Any:
    """``obj`` with numpy values replaced by torch / Python equivalents.

    Numeric numpy arrays become tensors of the same dtype and shape, numpy
    scalars become Python scalars (``np.float32(0.5)`` -> ``0.5``,
    ``np.int64(3)`` -> ``3``), inside dicts (``OrderedDict`` kept), lists
    and tuples at any depth. Containers are copied, never changed in place
    (a checkpoint's ``meta`` may hold references to live objects such as
    the dataset's metainfo); tensors and other values are kept as they are.

    Args:
        obj: A checkpoint entry (``meta``, ``message_hub``, ...).

    Returns:
        The converted copy: what a weights-only ``torch.load`` accepts with
        torch's default allow-list, as far as numpy is concerned.
    """
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in 'biuf':  # bool, int, uint, float
            return torch.tensor(obj)
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict) and type(obj) in (dict, OrderedDict):
        return type(obj)((k, to_portable(v)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(to_portable(v) for v in obj)
    return obj


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Save checkpoints that a plain ``torch.load(path)`` reads.

    torch >= 2.6 loads with ``weights_only=True`` by default and refuses
    any global outside its allow-list. A stock mmengine checkpoint holds two
    kinds of them:

    * the message hub's ``HistoryBuffer`` objects (the logged values, used
      to resume smoothed logs), pickled with their statistics methods;
    * numpy arrays and scalars: the buffers' contents, and values such as
      ``runtime_info['best_score']`` (a ``np.float32`` from the metric) or
      ``runtime_info['eta']``.

    When a checkpoint is saved this hook (running last,
    ``priority='LOWEST'``) writes every ``HistoryBuffer`` as
    ``{'__history_buffer__': True, 'log_history': Tensor,
    'count_history': Tensor, 'max_length': int}`` (float64 and int64
    tensors: the buffer's arrays, bit for bit) and converts every other
    numpy value outside ``state_dict`` with :func:`to_portable`. The file
    then holds only tensors and Python builtins: ``torch.load(path)`` reads
    it in a process that never imports this plugin (mmseg's
    ``publish_model.py`` included). When a checkpoint is loaded (resume or
    ``load_from``), the buffers are rebuilt as ``HistoryBuffer`` objects with
    the saved arrays, dtypes and ``max_length``, so the logs of a resumed
    run continue exactly. numpy scalars come back as Python scalars (same
    value). Checkpoints written by earlier versions of this hook (numpy
    arrays in the buffers) load as before.
    """

    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        if isinstance(hub, dict) and hub.get('log_scalars'):
            scalars = hub['log_scalars']
            for key, buf in list(scalars.items()):
                if isinstance(buf, HistoryBuffer):
                    log, count = buf.data
                    scalars[key] = {
                        _MARK: True,
                        'log_history': torch.tensor(log),
                        'count_history': torch.tensor(count),
                        'max_length': int(buf.max_length),
                    }
        for key in list(checkpoint):
            if key != 'state_dict':  # weights: tensors already
                checkpoint[key] = to_portable(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get('message_hub')
        scalars = hub.get('log_scalars') if isinstance(hub, dict) else None
        if not scalars:
            return
        for key, value in list(scalars.items()):
            if isinstance(value, dict) and value.get(_MARK):
                # np.asarray: tensors (this version) and arrays (earlier)
                scalars[key] = HistoryBuffer(
                    np.asarray(value['log_history']),
                    np.asarray(value['count_history']),
                    int(value['max_length']))

"""Loading checkpoints safely under ``torch.load(weights_only=True)``.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses any
global that is not allow-listed. Two kinds of files reach us:

* mmengine checkpoints written by our runs:
  :class:`~geminifusion_mmseg.engine.hooks.WeightsOnlyCheckpointHook` stores
  the message hub's ``HistoryBuffer`` objects as tensors and every other
  numpy value as a tensor or Python scalar, so the whole checkpoint (resume
  state included) loads with a plain ``torch.load(path)``, even in a process
  that never imports this plugin. Checkpoints of stock mmengine runs and of
  earlier versions hold numpy arrays/scalars: the numpy globals below are
  allow-listed once at import (:func:`register_safe_globals`) for them.
* weights from outside (released GeminiFusion ``.pth.tar``, ImageNet
  backbones): :func:`load_external_checkpoint` reads them with
  ``weights_only=True`` and only the numpy allow-list, and turns torch's
  refusal into an error that names the file.

``weights_only`` is never switched off.
"""
import os
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch

__all__ = [
    'NUMPY_SAFE_GLOBALS', 'register_safe_globals', 'load_external_checkpoint',
    'check_checkpoint_file', 'CheckpointLoadError'
]


def _numpy_safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """numpy arrays, scalars and dtypes, under numpy 1.x and 2.x names.

    A file pickled under numpy 1.x names ``numpy.core.multiarray.scalar``;
    under numpy 2.x ``numpy._core.multiarray.scalar``. Both map to the
    installed objects.
    """
    try:
        multiarray = np._core.multiarray  # numpy >= 2
    except AttributeError:  # pragma: no cover - numpy 1.x
        multiarray = np.core.multiarray
    allowed: List[Union[Callable, Tuple[Callable,
                                        str]]] = [np.ndarray, np.dtype]
    for name in ('scalar', '_reconstruct'):
        obj = getattr(multiarray, name)
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            allowed.append((obj, f'{module}.{name}'))
    # numpy >= 1.25 may pickle a dtype through its class, e.g.
    # numpy.dtypes.Float64DType.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            obj = getattr(dtypes, name)
            if isinstance(obj, type) and issubclass(obj, np.dtype):
                allowed.append((obj, f'numpy.dtypes.{name}'))
    return allowed


NUMPY_SAFE_GLOBALS = _numpy_safe_globals()


def register_safe_globals() -> None:
    """Allow-list numpy arrays/scalars/dtypes for ``weights_only`` loads.

    Needed for mmengine checkpoints (their ``meta`` and message hub hold
    numpy values). Adds data types only: nothing that can call code.
    """
    torch.serialization.add_safe_globals(NUMPY_SAFE_GLOBALS)


class CheckpointLoadError(RuntimeError):
    """A checkpoint file could not be read safely."""


def load_external_checkpoint(path: str, map_location: Any = 'cpu') -> Any:
    """Load a checkpoint from outside with ``weights_only=True``.

    Only tensors, builtins and the numpy globals of
    :data:`NUMPY_SAFE_GLOBALS` are accepted; anything else (a class, a
    function such as ``os.system``) is refused before it runs.

    Args:
        path (str): Local file.
        map_location: Passed to :func:`torch.load`.

    Returns:
        The unpickled object (usually a dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointLoadError: the file is empty, not a torch checkpoint
            (:func:`check_checkpoint_file`), damaged, or it holds a global
            outside the allow-list.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    check_checkpoint_file(path)
    try:
        # The process-wide allow-list holds NUMPY_SAFE_GLOBALS (the
        # ``safe_globals`` context manager would drop the numpy-1.x aliases
        # when it restores the list on exit).
        register_safe_globals()
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).split('\n')
        detail = next((line.strip() for line in first
                       if 'Unsupported global' in line or 'GLOBAL' in line),
                      first[0])
        raise CheckpointLoadError(
            f'refused to load {path}: it holds objects outside the '
            f'weights-only allow-list (tensors, builtins, numpy '
            f'arrays/scalars). Not loaded, nothing in it was run. '
            f'Detail: {detail}') from None
    except Exception as e:  # a damaged file: EOFError, KeyError, ...
        raise CheckpointLoadError(
            f'could not read checkpoint {path} ({type(e).__name__}: '
            f'{str(e)[:200]}): the file is damaged or not a PyTorch '
            'checkpoint; download or copy it again.') from e


#: How a file saved by ``torch.save`` starts: a zip archive (torch >= 1.6)
#: or a pickle (the legacy format).
_TORCH_MAGIC = (b'PK\x03\x04', b'\x80')


def check_checkpoint_file(path: str) -> None:
    """Refuse a file that cannot be a ``torch.save`` checkpoint, naming it.

    Reads the first bytes only: an empty file (an interrupted download or
    save), a text file (e.g. a Git LFS pointer or an HTML error page) or
    anything that is neither a zip archive nor a pickle gets a message
    that says what it is and what to do.

    Raises:
        CheckpointLoadError: The file is empty or not a checkpoint.
    """
    with open(path, 'rb') as f:
        head = f.read(64)
    if not head:
        raise CheckpointLoadError(
            f'checkpoint {path} is empty (0 bytes): an interrupted download '
            'or save. Download or copy it again (checkpoints written by '
            'this plugin\'s training are never left empty: use the one '
            'work_dir/last_checkpoint names).')
    if head.startswith(_TORCH_MAGIC):
        return
    what = 'binary data'
    if head.startswith(b'version https://git-lfs'):
        what = 'a Git LFS pointer (run `git lfs pull` to fetch the file)'
    elif head.lstrip().lower().startswith((b'<!doctype', b'<html')):
        what = 'an HTML page (a failed download?)'
    elif all(32 <= c < 127 or c in b'\t\r\n' for c in head):
        what = f'text ({head[:32].decode()!r}...)'
    raise CheckpointLoadError(
        f'{path} is not a PyTorch checkpoint: it holds {what}, not a file '
        'written by torch.save. Check the path, or download it again.')

"""Reading checkpoint files and normalising the state dicts inside them.

* :func:`read_checkpoint`: ``torch.load(weights_only=True)`` with the
  explicit numpy allow-list of :mod:`geminifusion_mmseg.utils.checkpoint`.
* :func:`strip_prefix`: the ONE place that drops a key prefix such as the
  ``module.`` of DistributedDataParallel or the ``backbone.`` of a
  segmentor.
* :func:`unwrap_state_dict`: the backbone's state dict inside a file.
* :func:`upgrade_state_dict`: keys written by earlier versions of this
  plugin's backbones -> the current layout.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch.nn as nn
from torch import Tensor

from ..utils.checkpoint import CheckpointLoadError, load_external_checkpoint

__all__ = [
    'CheckpointFormatError', 'CheckpointLoadError', 'read_checkpoint',
    'strip_prefix', 'unwrap_state_dict', 'upgrade_state_dict'
]

StateDict = 'OrderedDict[str, Tensor]'


class CheckpointFormatError(ValueError):
    """A checkpoint's content does not have the expected layout (the
    message names the file and the key)."""


def read_checkpoint(path: str):
    """Read a checkpoint file with ``weights_only=True`` onto the CPU.

    Raises:
        FileNotFoundError: no such file.
        CheckpointLoadError: unreadable, or holds objects outside the
            allow-list (nothing in it is run).
    """
    return load_external_checkpoint(path, map_location='cpu')


def _copy_metadata(src, dst, rename=None):
    """Carry ``src._metadata`` (per-module versions) over to ``dst``."""
    metadata = getattr(src, '_metadata', None)
    if metadata is not None:
        dst._metadata = OrderedDict((rename(k) if rename else k, v)
                                    for k, v in metadata.items()
                                    if rename is None or rename(k) is not None)
    return dst


def strip_prefix(state_dict: Dict[str, Tensor],
                 prefix: str = 'module.',
                 on_mixed: str = 'keep',
                 source: str = '<state dict>') -> StateDict:
    """Drop ``prefix`` from the keys of a state dict.

    Args:
        state_dict (dict): The state dict (its ``_metadata``, if any, is
            carried over with the same renaming).
        prefix (str): e.g. ``'module.'`` (DistributedDataParallel) or
            ``'backbone.'``. Defaults to ``'module.'``.
        on_mixed (str): When only SOME keys carry the prefix: ``'keep'``
            returns the dict unchanged, ``'raise'`` raises, ``'select'``
            keeps only the keys under the prefix (stripped).
        source (str): Name used in error messages (the file).

    Returns:
        OrderedDict: The renamed state dict (a new dict; same order).

    Raises:
        CheckpointFormatError: ``on_mixed='raise'`` and the keys are mixed.
    """
    if on_mixed not in ('keep', 'raise', 'select'):
        raise ValueError(f'strip_prefix: on_mixed must be keep, raise or '
                         f'select, got {on_mixed!r}')
    keys = list(state_dict)
    under = [k.startswith(prefix) for k in keys]
    if not all(under) and on_mixed != 'select':
        if any(under) and on_mixed == 'raise':
            bad = keys[under.index(False)]
            raise CheckpointFormatError(
                f'{source}: some keys start with {prefix!r} and some do not '
                f'(e.g. {bad!r})')
        return _copy_metadata(state_dict, OrderedDict(state_dict))

    def rename(key: str) -> Optional[str]:
        if key.startswith(prefix):
            return key[len(prefix):]
        if key + '.' == prefix:  # the metadata of the prefix module itself
            return ''
        return None

    out = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                      if k.startswith(prefix))
    return _copy_metadata(state_dict, out, rename)


def unwrap_state_dict(
        ckpt,
        path: str = '<checkpoint>',
        prefix: Optional[str] = None) -> Tuple[StateDict, List[str]]:
    """The backbone's state dict inside a checkpoint.

    Takes ``ckpt['state_dict']`` or ``ckpt['model']`` if present (else the
    dict itself), drops a ``module.`` prefix carried by every key, then, if
    ``prefix`` is given or some keys start with ``backbone.``, keeps only
    the keys under that prefix (stripped).

    Returns:
        tuple: (state dict of tensors, keys left out: other prefixes or
        non-tensor entries).

    Raises:
        CheckpointFormatError: ``ckpt`` is not a dict.
    """
    if not isinstance(ckpt, dict):
        raise CheckpointFormatError(
            f'{path}: expected a dict (a state dict, or one under '
            f'"state_dict" / "model"), got a {type(ckpt).__name__}')
    sd = ckpt
    for wrapper in ('state_dict', 'model'):
        if isinstance(ckpt.get(wrapper), dict):
            sd = ckpt[wrapper]
            break
    left_out = [
        str(k) for k, v in sd.items()
        if not (isinstance(k, str) and isinstance(v, Tensor))
    ]
    tensors = _copy_metadata(
        sd,
        OrderedDict((k, v) for k, v in sd.items()
                    if isinstance(k, str) and isinstance(v, Tensor)))
    tensors = strip_prefix(tensors, 'module.', 'keep', path)
    if prefix is None and any(k.startswith('backbone.') for k in tensors):
        prefix = 'backbone.'
    if prefix:
        left_out += [k for k in tensors if not k.startswith(prefix)]
        tensors = strip_prefix(tensors, prefix, 'select', path)
    return tensors, left_out


def upgrade_state_dict(model: nn.Module,
                       state_dict: Dict[str, Tensor]) -> StateDict:
    """Rename the keys of every GeminiFusion backbone inside ``model`` that
    an earlier version of this plugin wrote in an older layout.

    The version of each backbone's keys is read from the state dict's
    ``_metadata`` (as ``nn.Module.state_dict`` records it); without
    metadata the keys are treated as version 1 (renaming is a no-op on
    current keys). ``model.load_state_dict`` does the same by itself; this
    is for code that compares key sets first.

    Args:
        model (nn.Module): A segmentor (or backbone) of this plugin.
        state_dict (dict): Its checkpoint's state dict.

    Returns:
        OrderedDict: The state dict with current keys (metadata kept).
    """
    metadata = getattr(state_dict, '_metadata', None) or {}
    out = OrderedDict(state_dict)
    for name, module in model.named_modules():
        key_map = getattr(type(module), 'key_map', None)
        if key_map is None:
            continue
        prefix = name + '.' if name else ''
        version = metadata.get(name, {}).get('version')
        renamed = OrderedDict()
        for k, v in out.items():
            if k.startswith(prefix):
                k = prefix + key_map.upgrade_key(k[len(prefix):], version)
            renamed[k] = v
        out = renamed
    return _copy_metadata(state_dict, out)

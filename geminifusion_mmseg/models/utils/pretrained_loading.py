"""How a backbone reaches pretrained-weight loading without importing it.

The loader (file reading, format detection, key mapping) lives in
:mod:`geminifusion_mmseg.checkpoints`, a package ABOVE the models: it
imports the backbones (for their key maps), so the backbones must not
import it. Instead it registers itself here under a name
(:func:`register_pretrained_loader`), and a backbone's ``init_weights``
calls :func:`load_pretrained` with its ``init_cfg``, which looks the loader
up. Importing ``geminifusion_mmseg`` registers the default loader.
"""
from typing import Callable, Dict, Optional

import torch.nn as nn

__all__ = [
    'register_pretrained_loader', 'is_pretrained_cfg', 'pretrained_kwargs',
    'load_pretrained'
]

#: name -> ``loader(backbone, checkpoint_path, **kwargs) -> report dict``.
PRETRAINED_LOADERS: Dict[str, Callable[..., dict]] = {}
_OPTIONAL_KEYS = ('load_modality_norms', 'prefix')


def register_pretrained_loader(name: str = 'default'):
    """Decorator: register ``loader(backbone, checkpoint_path,
    load_modality_norms=True, prefix=None) -> dict`` under ``name``."""

    def register(loader: Callable[..., dict]) -> Callable[..., dict]:
        PRETRAINED_LOADERS[name] = loader
        return loader

    return register


def is_pretrained_cfg(init_cfg) -> bool:
    """Whether ``init_cfg`` is ``dict(type='Pretrained', checkpoint=...)``."""
    return isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained'


def pretrained_kwargs(init_cfg: dict) -> dict:
    """Loader arguments from a ``Pretrained`` ``init_cfg``.

    ``checkpoint`` (required) becomes ``checkpoint_path``; the optional
    ``load_modality_norms`` and ``prefix`` are passed on; mmengine's
    ``map_location`` is accepted and ignored (files are read onto the CPU).

    Raises:
        ValueError: no ``checkpoint``, or a key not listed above.
    """
    if 'checkpoint' not in init_cfg:
        raise ValueError("init_cfg=dict(type='Pretrained') needs a "
                         f"'checkpoint' path, got {init_cfg}")
    known = {'type', 'checkpoint', 'map_location', *_OPTIONAL_KEYS}
    extra = set(init_cfg) - known
    if extra:
        raise ValueError(f'unknown keys {sorted(extra)} in the Pretrained '
                         f'init_cfg {init_cfg}; known: {sorted(known)}')
    kwargs = dict(checkpoint_path=init_cfg['checkpoint'])
    kwargs.update((k, init_cfg[k]) for k in _OPTIONAL_KEYS if k in init_cfg)
    return kwargs


def load_pretrained(backbone: nn.Module,
                    init_cfg: dict,
                    loader: str = 'default') -> Optional[dict]:
    """Load ``init_cfg``'s checkpoint into ``backbone`` with the registered
    loader.

    Args:
        backbone (nn.Module): A GeminiFusion backbone.
        init_cfg (dict): ``dict(type='Pretrained', checkpoint=PATH, ...)``.
        loader (str): Registered loader name. Defaults to 'default'.

    Returns:
        dict: The loader's report (see
        :func:`geminifusion_mmseg.checkpoints.load_pretrained_backbone`).

    Raises:
        RuntimeError: no loader of that name is registered (import
            ``geminifusion_mmseg``, which registers the default one).
    """
    if loader not in PRETRAINED_LOADERS:
        raise RuntimeError(
            f'{type(backbone).__name__}: no pretrained-weight loader named '
            f'{loader!r} is registered (registered: '
            f'{sorted(PRETRAINED_LOADERS)}); import geminifusion_mmseg (or '
            'geminifusion_mmseg.checkpoints) to register the default one')
    return PRETRAINED_LOADERS[loader](backbone, **pretrained_kwargs(init_cfg))

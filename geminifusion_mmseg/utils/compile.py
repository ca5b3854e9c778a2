"""``torch.compile`` of a segmentor's backbone and head, with fallbacks.

The training fast path (``compile = True`` or ``compile = dict(...)`` in a
config, see :class:`~geminifusion_mmseg.engine.hooks.TorchCompileHook`)
compiles the modules that do the work of a step -- by default the backbone
and (on CUDA) the decode head -- in place with :meth:`torch.nn.Module.compile`:

* the modules keep their parameters and their ``state_dict`` keys (no
  ``_orig_mod.`` prefix, unlike ``torch.compile(module)``), so checkpoints,
  resuming and the DDP wrapper are unchanged;
* dynamo traces the whole MiT / Swin backbone, GeminiFusion layers and the
  custom autograd function of :func:`~geminifusion_mmseg.models.layers.
  gelu_linear.gelu_linear` included, into one graph (no graph break), and
  inductor fuses the element-wise work of its forward and backward;
* where compilation cannot apply, :func:`compile_unavailable_reason` says
  why and the run stays eager.
"""
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.utils import digit_version

#: oldest torch with ``nn.Module.compile`` and dynamo support for custom
#: ``torch.autograd.Function`` (traced forward and backward).
MIN_TORCH = '2.2.0'

#: keyword arguments of ``torch.compile`` accepted in ``cfg.compile``.
COMPILE_KWARGS = ('fullgraph', 'dynamic', 'backend', 'mode', 'options',
                  'disable')


def normalize_compile_cfg(
        compile_cfg: Union[None, bool, dict]) -> Optional[dict]:
    """``cfg.compile`` as ``torch.compile`` keyword arguments, or None.

    Args:
        compile_cfg (None | bool | dict): None or False: off; True: the
            defaults (``backend='inductor'``); a dict: keyword arguments of
            ``torch.compile``.

    Returns:
        dict | None: The keyword arguments (a copy), None when off.
    """
    if compile_cfg is None or compile_cfg is False:
        return None
    if compile_cfg is True:
        return {}
    if not isinstance(compile_cfg, dict):
        raise TypeError(
            f'compile should be a bool or a dict of torch.compile arguments, '
            f'got {type(compile_cfg).__name__}')
    unknown = set(compile_cfg) - set(COMPILE_KWARGS)
    if unknown:
        raise ValueError(f'compile: unknown torch.compile arguments '
                         f'{sorted(unknown)}; allowed: {COMPILE_KWARGS}')
    if compile_cfg.get('disable', False):
        return None
    return dict(compile_cfg)


def compile_unavailable_reason(
        compile_kwargs: dict,
        device: Union[str, torch.device] = 'cpu') -> Optional[str]:
    """Why ``torch.compile(**compile_kwargs)`` cannot run here, or None.

    Checks the torch version (>= :data:`MIN_TORCH`), dynamo support for
    this Python, and for the inductor backend (the default) its code
    generator for ``device``: a C++ compiler on CPU, Triton on CUDA.
    ``GEMINIFUSION_DISABLE_COMPILE=1`` in the environment also disables it.

    Args:
        compile_kwargs (dict): ``torch.compile`` keyword arguments.
        device (str | torch.device): Where the model runs.

    Returns:
        str | None: A sentence saying why not; None if it can run.
    """
    if os.environ.get('GEMINIFUSION_DISABLE_COMPILE', '0') not in ('', '0'):
        return 'GEMINIFUSION_DISABLE_COMPILE is set in the environment'
    if digit_version(torch.__version__) < digit_version(MIN_TORCH):
        return (f'torch {torch.__version__} is too old (torch.compile of '
                f'this model needs torch >= {MIN_TORCH})')
    try:
        import torch._dynamo as dynamo
        if not dynamo.is_dynamo_supported():
            return 'torch.compile (dynamo) does not support this Python'
    except Exception as e:  # noqa: BLE001  (any import problem: eager)
        return f'torch._dynamo is unavailable ({e})'
    backend = compile_kwargs.get('backend', 'inductor')
    if backend != 'inductor':
        return None
    device_type = torch.device(device).type
    if device_type == 'cpu':
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler
            get_cpp_compiler()
        except Exception:  # noqa: BLE001  (InvalidCxxCompiler, ImportError)
            return ('inductor on CPU needs a C++ compiler and none was '
                    'found (install g++ or set CXX)')
    elif device_type == 'cuda':
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return 'inductor on CUDA needs Triton (torch.utils._triton)'
        if not has_triton():
            return 'inductor on CUDA needs Triton, which is not installed'
    return None


def default_targets(device: Union[str, torch.device]) -> Tuple[str, ...]:
    """Submodules compiled by default: backbone and decode head on CUDA,
    where the eager step is bound by per-operator launch overhead; the
    backbone alone elsewhere (on CPU inductor's bilinear-upsampling
    backward makes a compiled head slower than the eager one)."""
    if torch.device(device).type == 'cuda':
        return ('backbone', 'decode_head')
    return ('backbone', )


def resolve_targets(model: nn.Module,
                    targets: Sequence[str]) -> Dict[str, nn.Module]:
    """The submodules named by ``targets`` (dotted names), in order.

    Raises:
        ValueError: A name that is not a submodule of ``model``.
    """
    modules = dict(model.named_modules())
    out = {}
    for name in targets:
        if name not in modules or name == '':
            raise ValueError(f'compile target {name!r} is not a submodule of '
                             f'{type(model).__name__}')
        out[name] = modules[name]
    return out


def compile_modules(model: nn.Module, targets: Sequence[str],
                    compile_kwargs: dict) -> Tuple[str, ...]:
    """``module.compile(**compile_kwargs)`` for every target, in place.

    Compilation itself is lazy (at the first call); parameters, buffers and
    ``state_dict`` keys are unchanged.

    Args:
        model (nn.Module): The (unwrapped) segmentor.
        targets (Sequence[str]): Submodule names, e.g.
            ``('backbone', 'decode_head')``.
        compile_kwargs (dict): ``torch.compile`` keyword arguments.

    Returns:
        tuple[str]: The compiled targets.
    """
    for module in resolve_targets(model, targets).values():
        module.compile(**compile_kwargs)
    return tuple(targets)


def set_compiled(modules: Sequence[nn.Module], enabled: bool,
                 stash: dict) -> None:
    """Switch compiled modules to eager (``enabled=False``) and back.

    ``nn.Module.compile`` keeps the compiled callable in
    ``_compiled_call_impl``; it is moved to ``stash`` and back.
    """
    for m in modules:
        if enabled:
            if id(m) in stash:
                m._compiled_call_impl = stash.pop(id(m))
        elif getattr(m, '_compiled_call_impl', None) is not None:
            stash[id(m)] = m._compiled_call_impl
            m._compiled_call_impl = None

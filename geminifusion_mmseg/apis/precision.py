"""Inference precision: fp32, or bf16 autocast where the hardware has it.

``precision`` (``init_model``, ``tools/test.py --precision``,
``demo/image_demo.py --precision``):

* ``'fp32'``: the model as trained (the default).
* ``'bf16'``: the backbone and head run under
  ``torch.autocast(device, dtype=torch.bfloat16)``; the logits are cast
  back to fp32 before the test-time resize and the argmax. On a CPU this
  is fast only with BF16 instructions (``avx512_bf16`` or ``amx_bf16`` in
  ``/proc/cpuinfo``): without them PyTorch emulates bf16 and inference is
  several times SLOWER than fp32, so ``'bf16'`` logs a warning and runs
  fp32 there.
* ``'bf16-force'``: bf16 autocast even on a CPU without BF16 instructions
  (a warning says it is emulated), e.g. to check the predictions of a
  model meant for a CPU that has them.

The segmentor carries the choice as ``inference_autocast_dtype`` (None:
fp32), read by :class:`MultiModalEncoderDecoder` at test time only;
training is unaffected. Measured speed and agreement: docs/benchmarks.md.

Before bf16 runs, every convolution shape of the model is checked once
against fp32 on a random input (:func:`keep_wrong_bf16_convolutions_in_fp32`):
PyTorch 2.13's oneDNN kernels on AMX CPUs return WRONG bf16 results (relative
error above 100%, not rounding) for some narrow strided convolutions, e.g.
``Conv2d(16, 16, kernel_size=4, stride=4)``, the spatial reduction of a
16-channel stage. Those convolutions run in fp32, with a warning naming
them; the zoo models (32 or more channels in every stage) have none.
"""
import contextlib
import logging
import platform
import types
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

__all__ = [
    'PRECISIONS', 'autocast_context', 'bf16_convolution_error',
    'check_precision', 'cpu_bf16_support',
    'keep_wrong_bf16_convolutions_in_fp32', 'resolve_precision',
    'set_inference_precision'
]

#: Accepted ``precision`` values.
PRECISIONS = ('fp32', 'bf16', 'bf16-force')

#: ``/proc/cpuinfo`` flags of native BF16 arithmetic on x86 CPUs.
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')

_DTYPES = {'fp32': None, 'bf16': torch.bfloat16}

#: Relative error (L2, against fp32) above which a convolution's bf16
#: result counts as wrong: bf16 rounding alone gives about 0.3%.
BF16_CONV_TOLERANCE = 0.05

_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ValueError
    naming it and the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision={precision!r} is not supported; choose '
                         f'one of {", ".join(PRECISIONS)}')
    return precision


def _cpuinfo_field(name: str, path: str = '/proc/cpuinfo') -> Optional[str]:
    """The value of the first ``name`` line of ``path`` (None where there is
    no such line or file, e.g. not on Linux)."""
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.startswith(name):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return None


def read_cpu_flags(path: str = '/proc/cpuinfo') -> FrozenSet[str]:
    """The CPU feature flags of the first ``flags`` line of ``path``
    (empty where there is no such file, e.g. not on Linux)."""
    return frozenset((_cpuinfo_field('flags', path) or '').split())


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform``
    says), for benchmark reports."""
    return (_cpuinfo_field('model name') or platform.processor()
            or platform.machine() or 'cpu')


def cpu_bf16_support(
        cpu_flags: Optional[Iterable[str]] = None) -> Tuple[bool, str]:
    """Whether this CPU has native BF16 instructions.

    Args:
        cpu_flags (Iterable[str], optional): CPU feature flags; None reads
            ``/proc/cpuinfo`` (:func:`read_cpu_flags`).

    Returns:
        tuple[bool, str]: the answer, and a description for messages
        (PyTorch's CPU capability and the BF16 flags found).
    """
    flags = read_cpu_flags() if cpu_flags is None else frozenset(cpu_flags)
    found = [f for f in BF16_CPU_FLAGS if f in flags]
    what = (f'CPU capability {torch.backends.cpu.get_cpu_capability()}, '
            f'BF16 flags: {", ".join(found) if found else "none"}')
    return bool(found), what


def resolve_precision(precision: str,
                      device: str = 'cpu',
                      cpu_flags: Optional[Iterable[str]] = None) -> str:
    """The precision to run: 'fp32' or 'bf16' (see the module docstring).

    Args:
        precision (str): One of :data:`PRECISIONS`.
        device (str): The model's device ('cpu', 'cuda', 'cuda:0', ...).
        cpu_flags (Iterable[str], optional): CPU flags to judge by
            (:func:`cpu_bf16_support`); None: this machine's.

    Returns:
        str: 'fp32' or 'bf16'. 'bf16' on a CPU without BF16 instructions
        gives 'fp32', with a warning; 'bf16-force' gives 'bf16' there, with
        a warning that it is emulated.
    """
    check_precision(precision)
    if precision == 'fp32':
        return 'fp32'
    if torch.device(device).type != 'cpu':
        return 'bf16'
    native, what = cpu_bf16_support(cpu_flags)
    if native:
        return 'bf16'
    if precision == 'bf16-force':
        print_log(
            f"precision='bf16-force': this CPU has no BF16 instructions "
            f'({what}); bf16 is emulated and slower here than fp32',
            logger='current',
            level=logging.WARNING)
        return 'bf16'
    print_log(
        f"precision='bf16': this CPU has no BF16 instructions ({what}); bf16 "
        'would be emulated and slower here than fp32, so the model runs in '
        "fp32 (precision='bf16-force' runs bf16 anyway)",
        logger='current',
        level=logging.WARNING)
    return 'fp32'


def autocast_context(precision: str, device_type: str = 'cpu'):
    """``torch.autocast(device_type, dtype=torch.bfloat16)`` for 'bf16', a
    no-op context for 'fp32'."""
    dtype = _DTYPES[check_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def _conv_shape(conv: nn.Module) -> tuple:
    return (type(conv), conv.in_channels, conv.out_channels, conv.kernel_size,
            conv.stride, conv.padding, conv.dilation, conv.groups,
            conv.padding_mode)


def bf16_convolution_error(conv: nn.Module) -> float:
    """Relative L2 error of ``conv`` under bf16 autocast against fp32, on a
    seeded random input giving an 8-pixel-wide output (global RNG untouched).

    Args:
        conv (nn.Conv1d | nn.Conv2d | nn.Conv3d): The convolution, with its
            own weights and device.

    Returns:
        float: ``||bf16 - fp32|| / ||fp32||``.
    """
    size = [(k - 1) * d + 1 + s * 7
            for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation)]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, conv.in_channels, *size, generator=gen)
    x = x.to(conv.weight.device)
    forward = type(conv).forward  # the class's, not an fp32 override
    with torch.no_grad():
        ref = forward(conv, x).float()
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            out = forward(conv, x).float()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-12))


def _fp32_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The class's forward outside autocast, on an fp32 input."""
    with torch.autocast(x.device.type, enabled=False):
        return type(self).forward(self, x.float())


def _is_kept_in_fp32(module: nn.Module) -> bool:
    forward = module.__dict__.get('forward')
    return getattr(forward, '__func__', None) is _fp32_forward


def keep_wrong_bf16_convolutions_in_fp32(model: nn.Module) -> List[str]:
    """Run in fp32 the convolutions whose bf16 result is wrong on this device.

    Each distinct convolution shape of ``model`` is checked once
    (:func:`bf16_convolution_error`); the convolutions of a shape above
    :data:`BF16_CONV_TOLERANCE` get an instance ``forward`` that leaves
    autocast and casts its input to fp32 (weights and state dict unchanged;
    ``torch.autocast`` elsewhere is unaffected), and a warning names them.

    Args:
        model (nn.Module): The model, on its inference device.

    Returns:
        list[str]: The names of the convolutions now kept in fp32.
    """
    errors: Dict[tuple, float] = {}
    kept = []
    for name, m in model.named_modules():
        if not isinstance(m, _CONVOLUTIONS) or _is_kept_in_fp32(m):
            continue
        key = _conv_shape(m)
        if key not in errors:
            errors[key] = bf16_convolution_error(m)
        if errors[key] > BF16_CONV_TOLERANCE:
            m.forward = types.MethodType(_fp32_forward, m)
            kept.append((name, m, errors[key]))
    if kept:
        shapes = sorted({repr(m) for _, m, _ in kept})
        worst = max(e for _, _, e in kept)
        names = [n for n, _, _ in kept]
        print_log(
            f'bf16 autocast: PyTorch {torch.__version__} gives wrong bf16 '
            f'results on this device for {", ".join(shapes)} (relative error '
            f'up to {worst:.2f} against fp32: a oneDNN kernel issue, seen on '
            f'AMX CPUs); kept in fp32 ({len(names)}): '
            f'{", ".join(names[:8])}{", ..." if len(names) > 8 else ""}',
            logger='current',
            level=logging.WARNING)
    return [n for n, _, _ in kept]


def _restore_convolutions(model: nn.Module) -> None:
    """Undo :func:`keep_wrong_bf16_convolutions_in_fp32`."""
    for m in model.modules():
        if _is_kept_in_fp32(m):
            del m.forward


def set_inference_precision(model: nn.Module,
                            precision: str,
                            device: Optional[str] = None,
                            cpu_flags: Optional[Iterable[str]] = None) -> str:
    """Make ``model`` (a segmentor, or a wrapper such as the TTA model)
    predict in ``precision`` (:func:`resolve_precision`).

    Sets ``inference_autocast_dtype`` (None or ``torch.bfloat16``) on every
    submodule that has it (:class:`MultiModalEncoderDecoder`); for bf16,
    keeps in fp32 the convolutions that bf16 gets wrong on this device
    (:func:`keep_wrong_bf16_convolutions_in_fp32`).

    Args:
        model (nn.Module): The model.
        precision (str): One of :data:`PRECISIONS`.
        device (str, optional): Its device; None: that of its parameters.
        cpu_flags (Iterable[str], optional): See :func:`resolve_precision`.

    Returns:
        str: The precision it now runs in ('fp32' or 'bf16').
    """
    check_precision(precision)
    if device is None:
        param = next(model.parameters(), None)
        device = 'cpu' if param is None else str(param.device)
    targets = [
        m for m in model.modules() if hasattr(m, 'inference_autocast_dtype')
    ]
    if not targets:
        if precision == 'fp32':  # nothing to change (e.g. mmseg's models)
            return 'fp32'
        raise ValueError(
            f'precision={precision!r}: {type(model).__name__} contains no '
            'GeminiFusion segmentor (MultiModalEncoderDecoder) to set it on')
    effective = resolve_precision(precision, device, cpu_flags)
    for m in targets:
        m.inference_autocast_dtype = _DTYPES[effective]
    _restore_convolutions(model)
    if effective != 'fp32':
        keep_wrong_bf16_convolutions_in_fp32(model)
        print_log(
            f'inference in {effective} autocast on {device}', logger='current')
    return effective

"""Measurement helpers of ``tools/analysis_tools/benchmark.py``: peak
memory, timing, precision contexts, CUDA-graph replay and process
isolation. The tool keeps the command line, the models it compares and
the report.
"""
import contextlib
import ctypes
import multiprocessing as mp
import sys
import time
import traceback
from typing import Any, Callable, Tuple

import torch

__all__ = [
    'PRECISIONS', 'MemoryMeter', 'proc_status_kb', 'trim_heap',
    'mmap_large_allocations', 'sync', 'timed', 'tf32_off', 'tf32_description',
    'autocast', 'graphed_steps', 'run_isolated'
]

#: ``--precision`` name -> autocast dtype (None: fp32, no autocast).
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def proc_status_kb(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` in KiB; without ``/proc`` (not Linux) the
    process's peak RSS from ``getrusage`` for both (never reset)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == 'darwin' else peak


def trim_heap() -> None:
    """Free what can be freed and give the heap's free pages back."""
    import gc
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def mmap_large_allocations() -> str:
    """Make glibc serve every allocation of 64 KiB or more with its own
    ``mmap`` (fixed ``M_MMAP_THRESHOLD``), so a freed tensor leaves the RSS
    at once. Returns '' or what failed."""
    try:
        libc = ctypes.CDLL('libc.so.6')
        return '' if libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024) else \
            'mallopt failed'
    except (OSError, AttributeError):
        return 'no glibc mallopt'


class MemoryMeter:
    """Peak memory of the steps run after :meth:`start`, in MiB.

    CUDA: ``max_memory_allocated`` minus the allocation at construction
    (before the model is built); the peak is reset by :meth:`start`.

    CPU: ``VmHWM`` minus ``VmRSS`` at construction. Meant for a process of
    its own that called :func:`mmap_large_allocations` before allocating
    anything: the RSS then follows the live tensors (the CPU analogue of
    ``max_memory_allocated``; glibc's heap caching would otherwise add an
    amount that depends on the order of earlier allocations). :meth:`start`
    resets the high-water mark (``/proc/self/clear_refs``, Linux >= 4.0) to
    the current RSS (the model, gradients, optimizer state), so transients
    of model construction do not count.
    """

    def __init__(self, device: torch.device, note: str = ''):
        self.cuda = device.type == 'cuda'
        self.notes = [note] if note else []
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
        else:
            trim_heap()
            self.base = proc_status_kb('VmRSS') * 1024
        self.method = None

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.method = ('CUDA max_memory_allocated (weights, gradients, '
                           'optimizer state, activations)')
            return
        trim_heap()
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            self.notes.append('peak not reset: since process start')
        self.method = ('CPU peak RSS (VmHWM) - RSS before the model was '
                       'built, in a process of its own with allocations '
                       '>= 64 KiB mmap-backed' +
                       (f' ({", ".join(self.notes)})' if self.notes else ''))

    def peak_mib(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = proc_status_kb('VmHWM') * 1024
        return (peak - self.base) / 2**20


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, device, warmup: int, repeats: int) -> Tuple[list, list]:
    """Wall-clock and process CPU seconds of each timed call."""
    times, cpu = [], []
    for i in range(warmup + repeats):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return times, cpu


@contextlib.contextmanager
def tf32_off():
    """Full fp32 on CUDA inside (matmul and cuDNN TF32 off), the previous
    settings restored after (with --isolation none later steps share
    them)."""
    saved = (torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = saved


def tf32_description() -> str:
    """PyTorch's TF32 settings, which apply to fp32 on CUDA (matrix
    products, cuDNN convolutions); the timed steps run with these."""
    flag = {True: 'TF32', False: 'fp32'}
    return (f'matmul {flag[torch.backends.cuda.matmul.allow_tf32]}, cuDNN '
            f'convolutions {flag[torch.backends.cudnn.allow_tf32]}')


def autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def graphed_steps(module: torch.nn.Module, x: torch.Tensor,
                  grad: torch.Tensor) -> dict:
    """``module``'s forward+backward and forward (no_grad) on ``x``, each
    captured once in a CUDA graph and replayed (fp32, CUDA only): the
    time without per-operator launch overhead."""
    static_x = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):  # warm-up outside the capture
            module(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        module(static_x)
    # after the capture above: this replaces ``module.forward``
    train_step = torch.cuda.make_graphed_callables(
        module, (x.clone().requires_grad_(), ))
    x_train = x.clone().requires_grad_()

    def train():
        train_step(x_train).backward(grad)

    return dict(train=train, infer=graph.replay)


def _child(fn: Callable[[Any], Any], arg: Any, conn) -> None:
    try:
        conn.send(('ok', fn(arg)))
    except BaseException:  # report everything to the parent
        conn.send(('error', traceback.format_exc()))
    finally:
        conn.close()


def run_isolated(fn: Callable[[Any], Any],
                 arg: Any,
                 isolation: str,
                 label: str = '') -> Any:
    """``fn(arg)``, in a fresh process unless ``isolation='none'``.

    Args:
        fn (callable): A module-level function (picklable by name); its
            result must be picklable.
        arg: Its one argument (picklable).
        isolation (str): 'fork', 'spawn' (a :mod:`multiprocessing` start
            method) or 'none' (run here).
        label (str): What runs, for the error message.

    Returns:
        ``fn(arg)``.

    Raises:
        RuntimeError: ``fn`` raised in the child (its traceback in the
            message) or the child died.
    """
    if isolation == 'none':
        return fn(arg)
    ctx = mp.get_context(isolation)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, arg, send))
    proc.start()
    send.close()
    try:
        status, payload = recv.recv()
    except EOFError:
        status, payload = 'error', 'the measurement process died'
    proc.join()
    if status != 'ok':
        raise RuntimeError(f'{label or fn.__name__} failed:\n{payload}')
    return payload

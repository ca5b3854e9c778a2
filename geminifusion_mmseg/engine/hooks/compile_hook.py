"""The training fast path: ``cfg.compile`` compiles backbone and head."""
import logging
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ...utils.compile import (compile_modules, compile_unavailable_reason,
                              default_targets, normalize_compile_cfg,
                              resolve_targets, set_compiled)


def _log(msg: str, level: int = logging.INFO) -> None:
    print_log(f'[compile] {msg}', logger='current', level=level)


@HOOKS.register_module()
class TorchCompileHook(Hook):
    """Apply ``cfg.compile`` to the modules that do a step's work.

    mmengine's Runner, given ``compile = True`` or ``compile = dict(...)``
    (``torch.compile`` arguments), compiles the whole ``model.train_step``,
    whose data preprocessing, loss bookkeeping (``.item()``), backward call
    and optimizer step break dynamo's graph into many pieces. With this hook
    (registered by ``configs/_base_/default_runtime.py``; a no-op when
    ``cfg.compile`` is unset) the same config switch instead compiles the
    ``targets`` (default: the backbone and the decode head on CUDA, the
    backbone alone elsewhere) in place
    (:meth:`torch.nn.Module.compile`: one graph each, forward and backward,
    same parameters and ``state_dict`` keys, so checkpoints, resume and DDP
    are unaffected), and mmengine's own compilation is skipped.

    Fallbacks, each with a log line saying why (training then runs eagerly):
    torch older than 2.2, no dynamo for this Python, inductor without a C++
    compiler (CPU) or Triton (CUDA), ``GEMINIFUSION_DISABLE_COMPILE=1``.
    If the training input size changes (no fixed crop), a warning says so:
    with ``dynamic=None`` (default) dynamo recompiles once with dynamic
    shapes; with ``dynamic=False`` the hook returns to eager after
    ``max_shapes`` different sizes.

    Only training is compiled: validation during training runs eagerly
    unless ``compile_eval=True`` (eval mode and ``no_grad`` would compile
    separate graphs, once per test image size), and ``runner.val()`` /
    ``runner.test()`` (tools/test.py) are not compiled.

    Random ops (stochastic depth, dropout) draw from inductor's own
    generator, seeded from torch's: deterministic and resumable, but not the
    eager numbers; ``compile = dict(options=dict(fallback_random=True))``
    makes them draw exactly the eager random numbers.

    On CPU the step is bound by arithmetic, not by operator overhead, and
    compiling gains nothing (measured at MiT-B0, see docs/benchmarks.md);
    inductor's decomposition of the head's bilinear upsampling (backward:
    an indexed accumulation) makes a compiled head about 1.4x slower there,
    hence the CPU default.

    Args:
        targets (Sequence[str], optional): Submodules of the segmentor to
            compile. None: ``('backbone', 'decode_head')`` on CUDA,
            ``('backbone',)`` otherwise.
        compile_eval (bool): Also use the compiled modules in validation.
        max_shapes (int): With ``dynamic=False``, input sizes after which
            compilation is turned off.
    """

    priority = 'VERY_LOW'

    def __init__(self,
                 targets: Optional[Sequence[str]] = None,
                 compile_eval: bool = False,
                 max_shapes: int = 8):
        self.targets = None if targets is None else tuple(targets)
        self.compile_eval = compile_eval
        self.max_shapes = max_shapes
        self._modules = []
        self._stash = {}
        self._saved_cfg = None
        self._kwargs = None
        self._shapes = []
        self._handle = None

    # ---------------------------------------------------------- set-up
    def before_run(self, runner) -> None:
        cfg_value = runner.cfg.get('compile', None)
        kwargs = normalize_compile_cfg(cfg_value)
        if kwargs is None:
            return
        # mmengine compiles model.train_step after before_run when
        # cfg.compile is set; this hook compiles instead, in before_train
        # (so runner.val() / runner.test() with the same config stay
        # eager). cfg.compile is restored then, so the config saved with
        # checkpoints is unchanged.
        self._saved_cfg = cfg_value
        self._kwargs = kwargs
        runner.cfg.compile = None

    def before_train(self, runner) -> None:
        if self._saved_cfg is None:
            return
        runner.cfg.compile = self._saved_cfg
        self._saved_cfg = None
        kwargs = self._kwargs
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = 'cpu'
        reason = compile_unavailable_reason(kwargs, device)
        if reason is not None:
            _log(
                f'torch.compile is not applied, training runs eagerly: '
                f'{reason}.', logging.WARNING)
            return
        targets = self.targets
        if targets is None:
            targets = default_targets(device)
        compile_modules(model, targets, kwargs)
        self._modules = list(resolve_targets(model, targets).values())
        self._handle = model.register_forward_pre_hook(
            self._record_shape, with_kwargs=True)
        _log(f'torch.compile({kwargs}) of {", ".join(targets)} on '
             f'{device}: compiled at the first iterations (slow), then '
             f'reused; validation runs '
             f'{"compiled" if self.compile_eval else "eagerly"}.')

    def after_run(self, runner) -> None:
        if self._saved_cfg is not None:  # a run without training
            runner.cfg.compile = self._saved_cfg
            self._saved_cfg = None
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # ---------------------------------------------------- input sizes
    def _record_shape(self, module, args, kwargs) -> None:
        """Forward pre-hook of the segmentor (eager): training input sizes."""
        if not module.training or not self._modules or self._stash:
            return
        inputs = kwargs.get('inputs', args[0] if args else None)
        shape = tuple(getattr(inputs, 'shape', ()))
        if not shape or shape in self._shapes:
            return
        self._shapes.append(shape)
        if len(self._shapes) == 2:
            _log(
                f'the training input size changes ({self._shapes[0]} -> '
                f'{shape}): dynamo recompiles for it '
                f'(dynamic={self._kwargs.get("dynamic")}); a fixed crop '
                f'(RandomCrop + Pad to crop_size) avoids this.',
                logging.WARNING)
        if (self._kwargs.get('dynamic') is False
                and len(self._shapes) > self.max_shapes):
            set_compiled(self._modules, False, self._stash)
            self._modules = []
            _log(
                f'{len(self._shapes)} different training input sizes with '
                f'dynamic=False: torch.compile turned off, training '
                f'continues eagerly.', logging.WARNING)

    # -------------------------------------------------------- eval
    def before_val(self, runner) -> None:
        if self._modules and not self.compile_eval:
            set_compiled(self._modules, False, self._stash)

    def after_val(self, runner) -> None:
        if self._modules and not self.compile_eval:
            set_compiled(self._modules, True, self._stash)

"""Fine-tuning: start from trained weights with a fresh classifier.

mmengine's ``load_from`` loads non-strictly: a ``decode_head.conv_seg``
whose shape differs from the model's (another number of classes) is
skipped and reported as a "size mismatch" warning, and the layer keeps
its initialisation. When the class count is the SAME (e.g. 40 NYUDv2
classes -> 40 classes of your own), the old classifier would be loaded
as if its classes meant something. This hook makes "replace the
classifier" explicit and independent of the class count.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS


@HOOKS.register_module()
class ReinitClassifierHook(Hook):
    """Re-initialise the classifier after ``load_from`` weights are loaded.

    At ``before_train`` (after mmengine has loaded ``load_from``), when the
    run starts at iteration 0 from a ``load_from`` checkpoint and is not a
    resume (both read from the run's config, ``runner.cfg``: ``load_from``
    and ``resume``), every module named in ``modules`` gets mmseg's classifier
    initialisation (``BaseDecodeHead``'s ``Normal(std=0.01)`` weights, zero
    bias), then is broadcast from rank 0 so that all processes agree. A
    resumed run (``resume=True`` or ``runner.iter > 0``), a run without
    ``load_from``, and testing (no ``before_train``) are left alone, so the
    hook can stay in a config that is later tested or resumed.

    .. code-block:: python

        load_from = 'checkpoints/geminifusion_mit-b3_nyudv2.pth'
        custom_hooks = [
            dict(type='StageOptimizerResetHook'),
            dict(type='ReinitClassifierHook'),
        ]

    Args:
        modules (Sequence[str]): Dotted names of the layers to reset, in
            the segmentor. Defaults to ``('decode_head.conv_seg', )``.
        std (float): Std of the normal weight init. Defaults to 0.01.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 modules: Sequence[str] = ('decode_head.conv_seg', ),
                 std: float = 0.01) -> None:
        if isinstance(modules, str):
            modules = (modules, )
        self.modules = tuple(modules)
        self.std = float(std)

    @staticmethod
    def _start_checkpoint(runner) -> Optional[str]:
        """The checkpoint the run starts from, read from ``runner.cfg``.

        Args:
            runner: The runner; its ``cfg`` (the config the run was built
                from: ``Runner.from_cfg``, ``tools/train.py``) is read.

        Returns:
            str | None: ``cfg.load_from`` unless the run resumes
            (``cfg.resume``), else None.
        """
        cfg = runner.cfg
        if not cfg:
            runner.logger.warning(
                'ReinitClassifierHook: the runner has no config (runner.cfg '
                'is empty: built with Runner(...) rather than '
                "Runner.from_cfg(cfg)), so its 'load_from' is unknown and "
                'nothing is re-initialised. Build the runner with '
                'Runner.from_cfg(cfg) or tools/train.py.')
        if cfg.get('resume', False):
            return None
        return cfg.get('load_from', None) or None

    def before_train(self, runner) -> None:
        """Reset ``self.modules`` if the run starts from ``load_from``.

        Args:
            runner: The runner; ``runner.cfg.load_from``/``resume``,
                ``runner.iter`` and ``runner.model`` are used.
        """
        load_from = self._start_checkpoint(runner)
        if not load_from or runner.iter != 0:
            return

        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        for name in self.modules:
            try:
                layer = model.get_submodule(name)
            except AttributeError as e:
                raise ValueError(
                    f'ReinitClassifierHook: the model has no module {name!r} '
                    f'(modules={self.modules})') from e
            params = dict(layer.named_parameters(recurse=False))
            if 'weight' not in params:
                raise ValueError(f'ReinitClassifierHook: {name!r} '
                                 f'({type(layer).__name__}) has no weight')
            with torch.no_grad():
                nn.init.normal_(params['weight'], mean=0., std=self.std)
                if params.get('bias', None) is not None:
                    nn.init.zeros_(params['bias'])
                for p in params.values():
                    broadcast(p.data)
            shape = tuple(params['weight'].shape)
            runner.logger.info(
                f'ReinitClassifierHook: {name} (weight {shape}) '
                're-initialised (normal std '
                f'{self.std:g}, bias 0) after loading '
                f"{load_from}: the checkpoint's "
                'classifier is not used')

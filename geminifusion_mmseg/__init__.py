"""GeminiFusion (ICML 2024) RGB-D segmentation for MMSegmentation 1.x.

Importing this package (directly, or through a config's
``custom_imports = dict(imports=['geminifusion_mmseg'],
allow_failed_imports=False)``) registers its models, datasets, transforms,
hooks and schedulers in mmseg's registries. Before that it makes the stack
work with mmcv-lite and torch >= 2.6:

* if mmcv's compiled ops are missing (mmcv-lite), a narrow ``mmcv.ops``
  stand-in is installed so that ``mmseg.models`` imports: exactly
  ``point_sample`` (pure PyTorch, same result as mmcv's) and
  ``sigmoid_focal_loss`` (raises a clear error when called); any other name
  fails as with stock mmcv-lite (see
  :mod:`geminifusion_mmseg.utils.mmcv_ops_fallback`). With full mmcv
  nothing is changed;
* mmseg's single-image ``inference_model`` / ``MMSegInferencer`` given
  one of our multi-modal configs raise an error naming our API
  (:mod:`geminifusion_mmseg.utils.mmseg_api_guard`);
* numpy arrays/scalars/dtypes are allow-listed for ``torch.load`` with
  ``weights_only=True`` (see :mod:`geminifusion_mmseg.utils.checkpoint`).
"""
from .utils.checkpoint import register_safe_globals
from .utils.mmcv_ops_fallback import install_mmcv_ops_fallback
from .version import __version__

install_mmcv_ops_fallback()
register_safe_globals()

# isort: off
from . import datasets, engine, evaluation, models  # noqa: E402,F401
from . import checkpoints  # noqa: E402,F401  (registers the loader)
from .utils.mmseg_api_guard import install_mmseg_api_guard  # noqa: E402
# isort: on

install_mmseg_api_guard()

__all__ = ['__version__']

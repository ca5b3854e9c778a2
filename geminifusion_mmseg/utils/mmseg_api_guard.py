"""Clear errors when mmseg's single-image inference APIs meet our models.

mmseg's ``mmseg.apis.inference_model(model, img)`` and
``mmseg.apis.MMSegInferencer`` feed ONE RGB image through a pipeline that
starts with ``LoadImageFromFile``. Our configs load two or more aligned
modalities (``LoadRGBDImageFromFile``, ``LoadMultiModalImageFromFile``),
so they failed deep inside (``LoadImageFromFile is not found in the test
pipeline``, a ``depth_encoding`` TypeError from ``LoadImageFromNDArray``, a
``depth_path`` KeyError). :func:`install_mmseg_api_guard` (run when the
plugin is imported) wraps the two entry points that see the config first,
``mmseg.apis.inference._preprare_data`` and
``MMSegInferencer._init_pipeline``: for a config whose test pipeline loads
with one of :data:`MULTIMODAL_LOADERS` they raise a ValueError naming
``geminifusion_mmseg.apis.inference_model`` and
``geminifusion_mmseg.apis.MultiModalSegInferencer``; every other config goes
to mmseg's code unchanged.
"""
import functools
from typing import Any, Optional

from mmengine.config import Config

from .pipeline_cfg import find_test_pipeline, transform_name

__all__ = [
    'MULTIMODAL_LOADERS', 'install_mmseg_api_guard', 'multimodal_loader_of',
    'mmseg_api_hint'
]

#: Test-pipeline loaders of the plugin's multi-modal configs.
MULTIMODAL_LOADERS = ('LoadRGBDImageFromFile', 'LoadMultiModalImageFromFile',
                      'LoadRGBDImageFromNDArray',
                      'LoadMultiModalImageFromNDArray')


def mmseg_api_hint(what: str, loader: Optional[str] = None) -> str:
    """The sentences naming our inference API, for ``what`` (the failing
    call) on a config whose test pipeline loads with ``loader``."""
    how = f' (its test pipeline loads with {loader})' if loader else ''
    return (f'{what} reads one RGB image, but this model segments aligned '
            f'modalities (RGB + depth / X){how}. Use '
            "geminifusion_mmseg.apis.inference_model(model, {'rgb': ..., "
            "'depth': ...}) (or inference_model(model, rgb, depth)), or "
            'geminifusion_mmseg.apis.MultiModalSegInferencer(model=CONFIG, '
            'weights=CKPT)(dict(rgb=..., depth=...)); see docs/inference.md.')


def multimodal_loader_of(cfg: Any) -> Optional[str]:
    """The plugin loader of ``cfg``'s test pipeline (test dataloader's or
    ``test_pipeline``), or None."""
    if not isinstance(cfg, (Config, dict)):
        return None
    pipelines = [find_test_pipeline(cfg), cfg.get('test_pipeline', None)]
    for steps in pipelines:
        for t in steps or []:
            if isinstance(t, dict) and transform_name(t) in \
                    MULTIMODAL_LOADERS:
                return transform_name(t)
    return None


def _guard_prepare_data(prepare):

    @functools.wraps(prepare)
    def wrapper(imgs, model, *args, **kwargs):
        loader = multimodal_loader_of(getattr(model, 'cfg', None))
        if loader is not None:
            raise ValueError(
                mmseg_api_hint('mmseg.apis.inference_model', loader))
        return prepare(imgs, model, *args, **kwargs)

    wrapper._geminifusion_guard = True
    return wrapper


def _guard_init_pipeline(init_pipeline):

    @functools.wraps(init_pipeline)
    def wrapper(self, cfg, *args, **kwargs):
        loader = multimodal_loader_of(cfg)
        if loader is not None:
            raise ValueError(
                mmseg_api_hint('mmseg.apis.MMSegInferencer', loader))
        return init_pipeline(self, cfg, *args, **kwargs)

    wrapper._geminifusion_guard = True
    return wrapper


def install_mmseg_api_guard() -> bool:
    """Wrap mmseg's inference entry points (once; idempotent).

    Returns:
        bool: False if ``mmseg.apis`` cannot be imported (nothing done).
    """
    try:
        import mmseg.apis.inference as mmseg_inference
        from mmseg.apis.mmseg_inferencer import MMSegInferencer
    except ImportError:  # pragma: no cover - mmseg without its apis
        return False
    if not getattr(mmseg_inference._preprare_data, '_geminifusion_guard',
                   False):
        mmseg_inference._preprare_data = _guard_prepare_data(
            mmseg_inference._preprare_data)
    if not getattr(MMSegInferencer._init_pipeline, '_geminifusion_guard',
                   False):
        MMSegInferencer._init_pipeline = _guard_init_pipeline(
            MMSegInferencer._init_pipeline)
    return True

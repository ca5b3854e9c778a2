from .checkpoint import (CheckpointLoadError, load_external_checkpoint,
                         register_safe_globals)
from .mmcv_ops_fallback import has_compiled_mmcv_ops, install_mmcv_ops_fallback

__all__ = [
    'CheckpointLoadError', 'load_external_checkpoint', 'register_safe_globals',
    'has_compiled_mmcv_ops', 'install_mmcv_ops_fallback'
]

"""A pure-PyTorch stand-in for ``mmcv.ops`` when only mmcv-lite is installed.

mmsegmentation 1.2.2 imports a few names from ``mmcv.ops`` at import time
(``point_sample`` and ``sigmoid_focal_loss`` unconditionally, some others
inside ``try`` blocks). mmcv-lite ships the Python files of ``mmcv.ops`` but
not the compiled ``mmcv._ext`` they load, so ``import mmseg.models`` fails.

:func:`install_mmcv_ops_fallback` registers a small ``mmcv.ops`` module that
provides, in pure PyTorch, the ops whose result is exactly that of mmcv's
(``point_sample``), and for every other name an object that raises a clear
"needs compiled mmcv ops" error when it is used. When full mmcv (with
``mmcv._ext``) is installed, nothing is installed and mmcv's own ops are used.
"""
import importlib.util
import sys
import types

import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'install_mmcv_ops_fallback', 'has_compiled_mmcv_ops', 'point_sample'
]

_HINT = ('it needs the compiled mmcv ops (mmcv._ext), but only mmcv-lite is '
         'installed. Install full mmcv built for your torch/CUDA, e.g. '
         '`pip install -U openmim && mim install "mmcv>=2.0.1,<2.2.0"`.')


def has_compiled_mmcv_ops() -> bool:
    """Whether ``mmcv._ext`` (full mmcv's compiled ops) can be imported."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except ModuleNotFoundError:  # mmcv itself missing
        return False


def point_sample(input: Tensor, points: Tensor, align_corners: bool = False,
                 **kwargs) -> Tensor:
    """Sample ``input`` at normalised points, exactly as ``mmcv.ops``.

    Args:
        input (Tensor): Feature map, shape (N, C, H, W).
        points (Tensor): Point coordinates in [0, 1] x [0, 1], shape (N, P, 2)
            or (N, Hgrid, Wgrid, 2).
        align_corners (bool): Passed to :func:`F.grid_sample`.

    Returns:
        Tensor: (N, C, P) or (N, C, Hgrid, Wgrid).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(
        input, points * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


class _NeedsCompiledOp:
    """Placeholder for an mmcv op that has no exact pure-PyTorch version.

    Importing it works (so mmseg imports); calling or instantiating it raises
    a RuntimeError that names the op.
    """

    def __init__(self, name: str):
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f'mmcv.ops.{self.__name__}: {_HINT}')

    def __repr__(self) -> str:
        return f'<mmcv.ops.{self.__name__}: needs compiled mmcv ops>'


def _module_getattr(name: str):
    if name.startswith('__'):
        raise AttributeError(name)
    return _NeedsCompiledOp(name)


def install_mmcv_ops_fallback() -> bool:
    """Register the pure-PyTorch ``mmcv.ops`` if compiled ops are missing.

    Must run before ``mmseg.models`` is imported. Idempotent.

    Returns:
        bool: True if the fallback is (now) in place, False if full mmcv is
        installed and its own ``mmcv.ops`` is used.
    """
    if has_compiled_mmcv_ops():
        return False
    current = sys.modules.get('mmcv.ops')
    if current is not None and getattr(current, '_geminifusion_fallback',
                                       False):
        return True
    import mmcv
    ops = types.ModuleType(
        'mmcv.ops', 'Pure-PyTorch subset of mmcv.ops (installed by '
        'geminifusion_mmseg because mmcv._ext is missing).')
    ops._geminifusion_fallback = True
    ops.point_sample = point_sample
    ops.__getattr__ = _module_getattr  # PEP 562: any other name -> error op
    ops.__all__ = ['point_sample']
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    return True

"""A narrow pure-PyTorch stand-in for ``mmcv.ops`` when only mmcv-lite is
installed.

mmcv-lite ships the Python files of ``mmcv.ops`` but not the compiled
``mmcv._ext`` they load, so ``import mmcv.ops`` fails with
``ModuleNotFoundError: No module named 'mmcv._ext'``. mmsegmentation 1.2.2
imports two names from ``mmcv.ops`` outside any ``try`` block when
``mmseg.models`` is imported, so ``import mmseg.models`` fails too:

* ``point_sample`` (``mmseg/models/utils/point_sample.py``,
  ``mmseg/models/decode_heads/san_head.py``,
  ``mmseg/utils/mask_classification.py``; also ``point_head.py`` inside a
  ``try``);
* ``sigmoid_focal_loss`` (``mmseg/models/losses/focal_loss.py``).

Every other ``mmcv.ops`` use in mmseg 1.2.2 and in the mmcv-lite modules it
imports is guarded: ``CrissCrossAttention`` (``cc_head.py``) and ``PSAMask``
(``psa_head.py``) inside ``try ... except ModuleNotFoundError``,
``mmcv.ops.multi_scale_deform_attn`` (``mmcv/cnn/bricks/transformer.py``)
inside ``try ... except ImportError``, ``DeformConv2d`` behind
``mmcv_full_available()``, ``get_compiler_version`` (``mmcv/utils/env.py``)
inside ``try ... except ModuleNotFoundError``.

:func:`install_mmcv_ops_fallback` registers, as ``mmcv.ops``, a module that
holds exactly :data:`PROVIDED_OPS`:

* :data:`EXACT_OPS` -- ops whose pure-PyTorch result equals mmcv's
  (``point_sample``);
* :data:`UNAVAILABLE_OPS` -- ops that only exist so that mmseg imports
  (``sigmoid_focal_loss``); calling one raises a ``RuntimeError`` that names
  the op and how to install full mmcv.

Any other name behaves as with stock mmcv-lite, so mmseg's own "op not
available" guards fire:

* a name of mmcv's real ``mmcv.ops`` (read from ``mmcv/ops/__init__.py``'s
  ``__all__``), e.g. ``CrissCrossAttention``, raises
  ``ModuleNotFoundError`` (``name='mmcv._ext'``), as importing it from stock
  mmcv-lite does;
* a name that mmcv.ops does not have (a typo) raises ``AttributeError``, so
  ``from mmcv.ops import NoSuchOp`` raises ``ImportError``;
* submodules (``mmcv.ops.multi_scale_deform_attn``) are not importable
  (the stand-in is not a package): ``ModuleNotFoundError``.

When full mmcv (with ``mmcv._ext``) is installed, nothing is installed and
mmcv's own ``mmcv.ops`` is used.
"""
import ast
import importlib.util
import os.path as osp
import sys
import types
from typing import Callable, FrozenSet, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'install_mmcv_ops_fallback', 'has_compiled_mmcv_ops', 'point_sample',
    'EXACT_OPS', 'UNAVAILABLE_OPS', 'PROVIDED_OPS'
]

#: Ops of the stand-in that compute exactly what mmcv's do.
EXACT_OPS: Tuple[str, ...] = ('point_sample', )
#: Ops of the stand-in that raise a clear error when called: mmseg 1.2.2
#: imports them unconditionally, but they need mmcv's compiled code.
UNAVAILABLE_OPS: Tuple[str, ...] = ('sigmoid_focal_loss', )
#: Every name the stand-in ``mmcv.ops`` provides.
PROVIDED_OPS: Tuple[str, ...] = EXACT_OPS + UNAVAILABLE_OPS

_INSTALL = ('Install full mmcv built for your torch/CUDA, e.g. '
            '`pip install -U openmim && mim install "mmcv>=2.0.1,<2.2.0"`.')
_HINT = ('it needs the compiled mmcv ops (mmcv._ext), but only mmcv-lite is '
         'installed. ' + _INSTALL)


def has_compiled_mmcv_ops() -> bool:
    """Whether ``mmcv._ext`` (full mmcv's compiled ops) can be imported.

    Returns:
        bool: False when mmcv is missing or is mmcv-lite.
    """
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except ModuleNotFoundError:  # mmcv itself missing
        return False


def point_sample(input: Tensor,
                 points: Tensor,
                 align_corners: bool = False,
                 **kwargs) -> Tensor:
    """Sample ``input`` at normalised points, exactly as ``mmcv.ops``.

    Args:
        input (Tensor): Feature map, shape (N, C, H, W).
        points (Tensor): Point coordinates in [0, 1] x [0, 1], shape (N, P, 2)
            or (N, Hgrid, Wgrid, 2).
        align_corners (bool): Passed to :func:`F.grid_sample`.
        **kwargs: Other :func:`F.grid_sample` arguments.

    Returns:
        Tensor: (N, C, P) or (N, C, Hgrid, Wgrid).
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(
        input, points * 2.0 - 1.0, align_corners=align_corners, **kwargs)
    return output.squeeze(3) if add_dim else output


def _unavailable_op(name: str) -> Callable:
    """A function named ``name`` that raises the "needs compiled ops" error.

    Args:
        name (str): The ``mmcv.ops`` name.

    Returns:
        Callable: Raises ``RuntimeError('mmcv.ops.<name>: it needs the
        compiled mmcv ops ...')`` whatever it is called with.
    """

    def op(*args, **kwargs):
        raise RuntimeError(f'mmcv.ops.{name}: {_HINT}')

    op.__name__ = op.__qualname__ = name
    op.__module__ = 'mmcv.ops'
    op.__doc__ = (f'Stand-in for mmcv.ops.{name} (mmcv-lite): calling it '
                  'raises a RuntimeError; install full mmcv to use it.')
    return op


def _mmcv_ops_names() -> Optional[FrozenSet[str]]:
    """The names in ``__all__`` of mmcv's own ``mmcv/ops/__init__.py``.

    Read from the source file (it cannot be imported without ``mmcv._ext``).

    Returns:
        FrozenSet[str] | None: e.g. ``{'CrissCrossAttention', 'nms', ...}``;
        None if the file is missing.
    """
    spec = importlib.util.find_spec('mmcv')
    if spec is None or not spec.submodule_search_locations:
        return None
    path = osp.join(
        list(spec.submodule_search_locations)[0], 'ops', '__init__.py')
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    names = set()
    for node in ast.walk(tree):
        # __all__ = [...], __all__ += [...], __all__.extend([...])
        value = None
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '__all__'
                for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AugAssign) and isinstance(
                node.target, ast.Name) and node.target.id == '__all__':
            value = node.value
        elif (isinstance(node, ast.Call)
              and isinstance(node.func, ast.Attribute)
              and node.func.attr == 'extend'
              and isinstance(node.func.value, ast.Name)
              and node.func.value.id == '__all__' and node.args):
            value = node.args[0]
        if isinstance(value, (ast.List, ast.Tuple)):
            names.update(
                e.value for e in value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return frozenset(names)


def _make_module_getattr(known: Optional[FrozenSet[str]]) -> Callable:
    """PEP 562 ``__getattr__`` for names the stand-in does not provide.

    Args:
        known (FrozenSet[str] | None): Names of mmcv's real ``mmcv.ops``;
            None if unknown (then every name but dunders counts as known,
            so that mmseg's ``except ModuleNotFoundError`` guards still fire).

    Returns:
        Callable: Raises ``ModuleNotFoundError`` (``name='mmcv._ext'``) for a
        known name, ``AttributeError`` for any other name.
    """

    def __getattr__(name: str):
        needs_ext = (not name.startswith('__')) if known is None else (
            name in known)
        if needs_ext:
            raise ModuleNotFoundError(
                f"No module named 'mmcv._ext': mmcv.ops.{name} needs the "
                'compiled mmcv ops, but only mmcv-lite is installed '
                '(geminifusion_mmseg provides only '
                f"{', '.join(PROVIDED_OPS)}). {_INSTALL}",
                name='mmcv._ext')
        raise AttributeError(
            f"module 'mmcv.ops' has no attribute {name!r} (mmcv-lite "
            'stand-in installed by geminifusion_mmseg; it provides '
            f"{', '.join(PROVIDED_OPS)})")

    return __getattr__


def install_mmcv_ops_fallback() -> bool:
    """Register the narrow ``mmcv.ops`` stand-in if compiled ops are missing.

    Must run before ``mmseg.models`` is imported. Idempotent.

    Returns:
        bool: True if the stand-in is (now) in place, False if full mmcv is
        installed and its own ``mmcv.ops`` is used (nothing is changed).
    """
    if has_compiled_mmcv_ops():
        return False
    current = sys.modules.get('mmcv.ops')
    if current is not None and getattr(current, '_geminifusion_fallback',
                                       False):
        return True
    import mmcv
    ops = types.ModuleType(
        'mmcv.ops', 'Stand-in for mmcv.ops installed by geminifusion_mmseg '
        'because mmcv._ext is missing (mmcv-lite). Provides only: ' +
        ', '.join(PROVIDED_OPS) + '.')
    ops._geminifusion_fallback = True
    ops.point_sample = point_sample
    for name in UNAVAILABLE_OPS:
        setattr(ops, name, _unavailable_op(name))
    ops.__all__ = list(PROVIDED_OPS)
    ops.__getattr__ = _make_module_getattr(_mmcv_ops_names())
    sys.modules['mmcv.ops'] = ops
    mmcv.ops = ops
    return True

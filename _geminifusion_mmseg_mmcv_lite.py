"""Name the fix when ``import mmcv.ops`` fails under mmcv-lite.

mmseg 1.2.2 imports ``mmcv.ops`` when ``mmseg.models`` / ``mmseg.apis`` is
imported. mmcv-lite has no compiled ``mmcv._ext``, so that import fails
with mmcv's ``No module named 'mmcv._ext'`` unless ``geminifusion_mmseg``
was imported first (it installs a narrow pure-PyTorch ``mmcv.ops``, see
``geminifusion_mmseg/utils/mmcv_ops_fallback.py``). Nothing of ours runs
before that failure, so the message cannot name the fix by itself.

``geminifusion_mmseg_mmcv_lite.pth`` (installed next to this module in
``site-packages``) calls :func:`install` at interpreter start-up. It only
puts :class:`MmcvOpsHintFinder` first on ``sys.meta_path``: this module
imports nothing but ``sys`` (no torch, no mmcv), and the finder does
nothing for any module but ``mmcv.ops``. For ``mmcv.ops`` it returns the
spec the other finders give, with the loader wrapped: when executing the
real ``mmcv/ops/__init__.py`` raises ``ModuleNotFoundError`` for
``mmcv._ext``, the same error (type, ``name``, ``path``) is raised again
with the fix appended to its message. Nothing else changes: which imports
succeed, what ``mmcv.ops`` is, every ``except ImportError`` guard. With full
mmcv, or once ``geminifusion_mmseg`` has installed its ``mmcv.ops``, the
wrapper never sees an error.
"""
import sys

__all__ = ['HINT', 'MmcvOpsHintFinder', 'install']

#: Appended to ``No module named 'mmcv._ext'``.
HINT = ('mmcv-lite has no compiled ops, and mmseg.models / mmseg.apis import '
        'mmcv.ops. geminifusion_mmseg is installed and supplies what mmseg '
        'needs: `import geminifusion_mmseg` before mmseg.apis / mmseg.models, '
        'or run the script as `python -m geminifusion_mmseg SCRIPT ARGS` '
        '(an mmseg tool: `python -m geminifusion_mmseg '
        'mmseg::misc/print_config.py CONFIG`); or install full mmcv '
        '(`mim install "mmcv>=2.0.1,<2.2.0"`). See the README of '
        'geminifusion_mmseg, "Install".')


class _HintLoader:
    """Runs ``loader``; a missing ``mmcv._ext`` gets :data:`HINT`.

    Every other attribute (``get_source``, ``get_resource_reader``, ...) is
    the wrapped loader's.
    """

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            self.loader.exec_module(module)
        except ModuleNotFoundError as err:
            if err.name != 'mmcv._ext' or HINT in str(err):
                raise
            raise ModuleNotFoundError(
                f'{err}. {HINT}', name=err.name, path=err.path) from err


class MmcvOpsHintFinder:
    """Meta-path finder that wraps the loader of ``mmcv.ops`` only."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'mmcv.ops':
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if hasattr(loader,
                   'exec_module') and not isinstance(loader, _HintLoader):
            spec.loader = _HintLoader(loader)
        return spec


def install() -> None:
    """Put :class:`MmcvOpsHintFinder` first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MmcvOpsHintFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MmcvOpsHintFinder())

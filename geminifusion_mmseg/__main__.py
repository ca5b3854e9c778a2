"""Run a script with this plugin imported first.

    python -m geminifusion_mmseg SCRIPT [ARGS ...]
    python -m geminifusion_mmseg mmseg::misc/print_config.py CONFIG

With mmcv-lite (no compiled ``mmcv._ext``), ``import mmseg.apis`` or
``import mmseg.models`` fails with ``No module named 'mmcv._ext'`` unless
``geminifusion_mmseg`` is imported before (it installs the narrow
``mmcv.ops`` stand-in, see :mod:`geminifusion_mmseg.utils.mmcv_ops_fallback`).
Scripts that read a config first (mmseg's ``tools/train.py`` and
``tools/test.py``, ours) get that from the config's ``custom_imports``;
scripts that import ``mmseg.apis`` at the top (mmseg's ``print_config.py``,
``get_flops.py``, your own) run through this module instead: it imports the
plugin, then runs SCRIPT as ``python SCRIPT ARGS`` would (``__name__ ==
'__main__'``, ``sys.argv = [SCRIPT, *ARGS]``, the script's folder first on
``sys.path``).

SCRIPT is a file, or ``PACKAGE::TOOL`` for a tool an installed OpenMMLab
package ships (``<package>/.mim/tools/TOOL``, where mim looks; for an
editable install the repository's ``tools/TOOL``), e.g.
``mmseg::misc/print_config.py``, ``mmseg::analysis_tools/get_flops.py``.
"""
import argparse
import importlib.util
import os.path as osp
import runpy
import sys
from typing import List, Optional


def resolve_script(script: str) -> str:
    """The file ``script`` names (a path, or ``PACKAGE::TOOL``).

    Raises:
        SystemExit: The package is not installed or has no such tool, or
            the file does not exist; the message names what was looked for.
    """
    if '::' not in script:
        if not osp.isfile(script):
            raise SystemExit(f'python -m geminifusion_mmseg: no such script: '
                             f'{script}')
        return script
    package, tool = script.split('::', 1)
    if not tool.endswith('.py'):
        tool += '.py'
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f'python -m geminifusion_mmseg: {script}: package '
                         f'{package!r} is not installed')
    root = list(spec.submodule_search_locations)[0]
    candidates = [
        osp.join(root, '.mim', 'tools', tool),
        osp.join(osp.dirname(root), 'tools', tool)
    ]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise SystemExit(f'python -m geminifusion_mmseg: {script}: no such tool '
                     f'(looked for {" and ".join(candidates)})')


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog='python -m geminifusion_mmseg',
        description='Run SCRIPT with geminifusion_mmseg imported first '
        '(mmcv-lite: the mmcv.ops stand-in mmseg.apis / mmseg.models need).')
    parser.add_argument(
        'script',
        help='script file, or PACKAGE::TOOL (e.g. '
        'mmseg::misc/print_config.py)')
    parser.add_argument(
        'args', nargs=argparse.REMAINDER, help='arguments of the script')
    args = parser.parse_args(argv)
    path = resolve_script(args.script)
    sys.argv = [path] + args.args
    sys.path.insert(0, osp.dirname(osp.abspath(path)))
    runpy.run_path(path, run_name='__main__')


if __name__ == '__main__':
    main()

"""The wheel carries what mim needs, and mim's lookups find it.

The wheel is built offline from a copy of the repository
(``pip wheel --no-deps --no-build-isolation``) and unpacked into a folder
that is put first on ``PYTHONPATH`` (a pure-Python wheel installs by
unpacking). openmim itself is not installed in the test environment: it
pulls in openxlab, which pins ``setuptools~=60.2``, ``requests~=2.28``,
``rich~=13.4`` (see docs/packaging.md). So the lookups of openmim 0.3.9
(``mim/utils/utils.py``: ``get_installed_path``; ``mim/commands/search.py``:
``load_metadata_from_local``; ``train.py`` / ``test.py`` / ``run.py``: the
config and script searches) are done here the way mim does them, in a
fresh process, and the wheel's own ``.mim/tools/train.py`` and ``test.py``
run on its ``.mim/configs`` as ``mim train`` / ``mim test`` call them.
``GEMINIFUSION_MIM_PYTHON=/path/to/python`` (an interpreter with openmim)
also runs the real ``mim search``.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

from geminifusion_mmseg.utils.mmcv_ops_fallback import has_compiled_mmcv_ops
from tests.helpers.tiny_configs import REPO, tiny_quickstart_config

MIM = 'geminifusion_mmseg/.mim'
HINT_PTH = 'geminifusion_mmseg_mmcv_lite.pth'
HINT_MODULE = '_geminifusion_mmseg_mmcv_lite'
SHIPPED = {
    'configs': ('.py', '.yaml', '.yml', '.md'),
    'tools': ('.py', '.sh'),
    'demo': ('.py', )
}


def _repo_files():
    """{path relative to the repository: bytes} that ``.mim`` must carry."""
    files = {'model-index.yml': None}
    for folder, suffixes in SHIPPED.items():
        for root, dirs, names in os.walk(osp.join(REPO, folder)):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            for name in names:
                if name.endswith(suffixes):
                    files[osp.relpath(osp.join(root, name), REPO)] = None
    for rel in files:
        with open(osp.join(REPO, rel), 'rb') as f:
            files[rel] = f.read()
    return files


def _build(src, out, *args):
    """Build a wheel of ``src`` into ``out`` offline; its path."""
    run = subprocess.run([sys.executable, *args],
                         cwd=src,
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (path, ) = glob.glob(str(out / 'geminifusion_mmseg-*.whl'))
    return path


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """A copy of the repository (what an sdist or a checkout holds)."""
    src = tmp_path_factory.mktemp('wheel') / 'src'
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns('.git', 'build', 'dist', '*.egg-info',
                                      'work_dirs', 'data', '__pycache__',
                                      '.mim', '.pytest_cache'))
    return src


@pytest.fixture(scope='module')
def wheel(source):
    """(wheel file, folder it is unpacked in)."""
    out = source.parent / 'dist'
    path = _build(source, out, '-m', 'pip', 'wheel', '--no-deps',
                  '--no-build-isolation', '--no-index', '.', '-w', str(out))
    site = source.parent / 'site'
    with zipfile.ZipFile(path) as z:
        z.extractall(site)
    return path, site


def _python(site, *args, cwd, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, *args],
                          env=env,
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          **kwargs)


def test_wheel_carries_configs_tools_and_model_index(wheel):
    path, _ = wheel
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        mim = {n[len(MIM) + 1:] for n in names if n.startswith(MIM + '/')}
        expected = _repo_files()
        assert mim == set(expected)  # exactly these, nothing else
        for rel, data in expected.items():
            assert z.read(f'{MIM}/{rel}') == data, rel
    assert 'configs/geminifusion/metafile.yaml' in mim
    assert not any('__pycache__' in n for n in names)
    # site-packages: the mmcv-lite hint's start-up line and its module
    assert [n for n in names if n.endswith('.pth')] == [HINT_PTH]
    with zipfile.ZipFile(path) as z:
        for name in (HINT_PTH, HINT_MODULE + '.py'):
            with open(osp.join(REPO, name), 'rb') as f:
                assert z.read(name) == f.read(), name
    # the package itself, not the repository's tests
    assert not any(n.startswith('tests/') for n in names)


def test_editable_installs_get_relative_symlinks(tmp_path):
    """``pip install -e .`` (build_py in editable mode) links ``.mim`` to
    the repository's folders, as mmseg's ``add_mim_extension`` does."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('gf_setup',
                                                  osp.join(REPO, 'setup.py'))
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)  # defines, does not call setup()
    mim = tmp_path / 'pkg' / '.mim'
    for _ in range(2):  # idempotent: a reinstall replaces the links
        setup_py.add_mim_files(str(mim), 'symlink')
    for name in setup_py.MIM_FILES:
        link = mim / name
        assert link.is_symlink() and not osp.isabs(os.readlink(link))
        assert osp.samefile(link, osp.join(REPO, name))


# What site.py does at start-up for site-packages (.pth lines included),
# then a script that imports mmseg.apis before the plugin. The script's
# folder ``sys.argv[1]`` is processed first; ``sys.argv[2:]`` after it.
_MMSEG_APIS_FIRST = r'''
import json, site, sys
for folder in sys.argv[1:]:
    site.addsitedir(folder)
heavy = sorted(m for m in sys.modules
               if m.split('.')[0] in ('torch', 'numpy', 'mmcv', 'mmseg'))
first = type(sys.meta_path[0]).__name__
try:
    import mmseg.apis
    error = None
except ModuleNotFoundError as err:
    error = [err.name, str(err)]
print(json.dumps(dict(heavy=heavy, first=first, error=error)))
'''


def _hint_run(*site_dirs, cwd, isolated=False):
    """Run :data:`_MMSEG_APIS_FIRST` with ``site_dirs`` as site dirs."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['OMP_NUM_THREADS'] = '1'
    flags = ['-S'] if isolated else []
    run = subprocess.run([
        sys.executable, *flags, '-c', _MMSEG_APIS_FIRST, *map(str, site_dirs)
    ],
                         env=env,
                         cwd=cwd,
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.skipif(has_compiled_mmcv_ops(), reason='full mmcv: no error')
def test_installed_hint_names_the_fix(wheel, tmp_path):
    """Installed (the wheel's files in a site dir, its .pth processed as at
    start-up), the hint's finder is first on sys.meta_path without
    importing torch, numpy, mmcv or mmseg; a script importing mmseg.apis
    first then fails with mmcv-lite's error (same type and name) followed
    by the fix."""
    from _geminifusion_mmseg_mmcv_lite import HINT
    _, site = wheel
    got = _hint_run(site, cwd=tmp_path)
    assert got['heavy'] == [] and got['first'] == 'MmcvOpsHintFinder'
    name, message = got['error']
    assert name == 'mmcv._ext'
    assert message == f"No module named 'mmcv._ext'. {HINT}"
    assert 'python -m geminifusion_mmseg SCRIPT' in message


def _record(wheel):
    """{path: (sha256, size)} of a wheel's RECORD."""
    with zipfile.ZipFile(wheel) as z:
        (name, ) = [n for n in z.namelist() if n.endswith('.dist-info/RECORD')]
        lines = z.read(name).decode().splitlines()
    return {
        path: (digest, size)
        for path, digest, size in (line.rsplit(',', 2) for line in lines)
    }


def test_editable_wheel_carries_the_hint(source, tmp_path):
    """``pip install -e .`` (PEP 660: setuptools' editable_wheel, here
    through its build backend, offline) installs the .pth and its module
    too, listed in RECORD (pip uninstalls them); the hint works there."""
    import base64
    import hashlib
    out = tmp_path / 'edist'
    path = _build(
        source, out, '-c', 'import sys; from setuptools import build_meta; '
        'build_meta.build_editable(sys.argv[1])', str(out))
    record = _record(path)
    with zipfile.ZipFile(path) as z:
        for name in (HINT_PTH, HINT_MODULE + '.py'):
            data = z.read(name)
            with open(osp.join(REPO, name), 'rb') as f:
                assert data == f.read(), name
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()).rstrip(b'=').decode()
            assert record[name] == (f'sha256={digest}', str(len(data)))
        z.extractall(tmp_path / 'site')
    if has_compiled_mmcv_ops():
        return
    # -S: this environment's own editable finder of geminifusion_mmseg
    # would shadow the new one (same module name); its site-packages last
    import site
    got = _hint_run(
        tmp_path / 'site',
        *site.getsitepackages(),
        cwd=tmp_path,
        isolated=True)
    assert got['error'][0] == 'mmcv._ext'
    assert 'python -m geminifusion_mmseg SCRIPT' in got['error'][1]


_MIM_LOOKUPS = r'''
import json, os, os.path as osp, sys, warnings
warnings.simplefilter('ignore')
import pkg_resources
import yaml

package = 'geminifusion_mmseg'
# mim/utils/utils.py: is_installed, get_installed_path, package2module
dist = pkg_resources.get_distribution(package)
pkg_root = osp.join(dist.location, package)
top_level = dist.get_metadata('top_level.txt').split('\n')[0]


def recursively_find(root, base_name):  # mim/utils/utils.py
    return [osp.join(r, base_name)
            for r, _, files in os.walk(root, followlinks=True)
            if base_name in files]


# mim/commands/search.py: load_metadata_from_local (first candidate)
index = osp.join(pkg_root, '.mim', 'model-index.yml')
with open(index) as f:
    imports = yaml.safe_load(f)['Import']
models = []
for rel in imports:  # model-index resolves Import next to the index file
    with open(osp.join(osp.dirname(index), rel)) as f:
        models += yaml.safe_load(f)['Models']
# mim train/test: a config name is searched in the whole package root
configs = {m['Name']: recursively_find(pkg_root, osp.basename(m['Config']))
           for m in models}
# mim run: <pkg_root>/.mim/tools/, scripts matched by suffix
run_prefix = osp.join(pkg_root, '.mim', 'tools') + os.sep
scripts = {name: recursively_find(run_prefix, name)
           for name in ('train.py', 'test.py', 'get_flops.py',
                        'geminifusion2mmseg.py', 'browse_dataset.py')}
import geminifusion_mmseg
print(json.dumps(dict(
    location=dist.location, pkg_root=pkg_root, top_level=top_level,
    index=osp.isfile(index), configs=configs, scripts=scripts,
    train=osp.isfile(osp.join(pkg_root, '.mim', 'tools', 'train.py')),
    test=osp.isfile(osp.join(pkg_root, '.mim', 'tools', 'test.py')),
    imported=geminifusion_mmseg.__file__)))
'''


def test_mims_lookups_find_the_zoo_and_the_tools(wheel, tmp_path):
    _, site = wheel
    run = _python(site, '-c', _MIM_LOOKUPS, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.splitlines()[-1])
    assert found['location'] == str(site)
    assert osp.isdir(found['pkg_root']) and found['top_level'] == \
        'geminifusion_mmseg'
    assert found['index'] and found['train'] and found['test']
    assert found['imported'].startswith(str(site))
    with open(osp.join(REPO, 'configs', 'geminifusion', 'metafile.yaml')) as f:
        import yaml
        names = [m['Name'] for m in yaml.safe_load(f)['Models']]
    assert sorted(found['configs']) == sorted(names)
    for name, paths in found['configs'].items():
        # exactly one file per config name, or mim refuses it
        assert len(paths) == 1, (name, paths)
        assert paths[0].startswith(osp.join(found['pkg_root'], '.mim'))
    for name, paths in found['scripts'].items():
        assert len(paths) == 1, (name, paths)


def test_wheel_tools_train_and_test_its_configs(wheel, tmp_path):
    """What ``mim train`` / ``mim test geminifusion_mmseg CFG`` execute:
    ``python <pkg>/.mim/tools/{train,test}.py CONFIG ... --launcher none``,
    on a config inheriting the wheel's quickstart config, outside the
    repository."""
    _, site = wheel
    mim = site / 'geminifusion_mmseg' / '.mim'
    cfg = tiny_quickstart_config(
        tmp_path,
        'from_wheel',
        max_iters=2,
        interval=2,
        base=str(mim / 'configs' / 'quickstart' /
                 'geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py'))
    train = _python(
        site,
        str(mim / 'tools' / 'train.py'),
        cfg,
        '--work-dir',
        'wd',
        '--launcher',
        'none',
        cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    test = _python(
        site,
        str(mim / 'tools' / 'test.py'),
        cfg,
        'wd/iter_2.pth',
        '--work-dir',
        'wd_test',
        '--launcher',
        'none',
        cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert 'mIoU by branch' in test.stdout + test.stderr


@pytest.mark.skipif(
    not os.environ.get('GEMINIFUSION_MIM_PYTHON'),
    reason='set GEMINIFUSION_MIM_PYTHON to a python with openmim')
def test_real_mim_search(wheel, tmp_path):
    _, site = wheel
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run([
        os.environ['GEMINIFUSION_MIM_PYTHON'], '-m', 'mim', 'search',
        'geminifusion_mmseg', '--valid-config'
    ],
                         env=env,
                         cwd=tmp_path,
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert 'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640' in run.stdout

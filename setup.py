"""Install geminifusion_mmseg (pure Python: no compiled extensions).

As OpenMMLab packages do for mim, the package carries
``geminifusion_mmseg/.mim/{configs,tools,demo,model-index.yml}``: copies in
wheels (and so in ``pip install .``), written into the build directory only;
relative symlinks to the repository's folders in editable installs
(``pip install -e .``), which are git-ignored. ``mim search / train / test /
run geminifusion_mmseg ...`` read them from a wheel install.

Both kinds of install also put :data:`HINT_FILES` into ``site-packages``
(copies, also in editable installs): at start-up the ``.pth`` line installs
the import hook of ``_geminifusion_mmseg_mmcv_lite.py``, which only appends
the fix to mmcv-lite's ``No module named 'mmcv._ext'`` when ``mmcv.ops``
fails to import (see that module and docs/packaging.md). The module is not
a ``py_modules`` entry: that would put it into ``top_level.txt``, whose
first line mim takes for the package's module.
"""
import base64
import glob
import hashlib
import os
import os.path as osp
import shutil
import zipfile
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 64 (PEP 660 editable installs)
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # pragma: no cover
    editable_wheel = None

#: What ``.mim`` holds (mmseg's ``add_mim_extension`` list, plus the demo).
MIM_FILES = ('configs', 'tools', 'demo', 'model-index.yml')
_MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc')
#: Files for the root of ``site-packages``: the start-up line, and the
#: import hook it installs.
HINT_FILES = ('geminifusion_mmseg_mmcv_lite.pth',
              '_geminifusion_mmseg_mmcv_lite.py')


def add_mim_files(mim_dir, mode):
    """Put :data:`MIM_FILES` into ``mim_dir`` as copies or symlinks.

    Args:
        mim_dir (str): ``<package>/.mim`` in the build or source tree.
        mode (str): 'copy' or 'symlink' (relative links).
    """
    repo = osp.dirname(osp.abspath(__file__))
    os.makedirs(mim_dir, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(repo, name), osp.join(mim_dir, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=_MIM_IGNORE)
        else:
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that adds the ``.mim`` folder (see the module doc)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            add_mim_files(
                osp.join(
                    osp.dirname(osp.abspath(__file__)), 'geminifusion_mmseg',
                    '.mim'), 'symlink')
        else:
            add_mim_files(
                osp.join(self.build_lib, 'geminifusion_mmseg', '.mim'), 'copy')
            for name in HINT_FILES:  # the wheel's root is site-packages
                self.copy_file(
                    osp.join(osp.dirname(osp.abspath(__file__)), name),
                    osp.join(self.build_lib, name),
                    preserve_mode=False)


def add_file_to_wheel(wheel, name, data):
    """Add ``name`` (at the wheel's root) holding ``data`` to ``wheel``,
    with its line in the wheel's ``RECORD`` (PEP 427 hash and size).

    Args:
        wheel (str): The ``.whl`` file, rewritten in place.
        name (str): Path inside the wheel, e.g. ``'x.pth'``.
        data (bytes): Its content.
    """
    digest = base64.urlsafe_b64encode(
        hashlib.sha256(data).digest()).rstrip(b'=').decode()
    with zipfile.ZipFile(wheel) as z:
        entries = [(info, z.read(info)) for info in z.infolist()]
    tmp = wheel + '.tmp'
    with zipfile.ZipFile(tmp, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
        for info, content in entries:
            if info.filename.endswith('.dist-info/RECORD'):
                content += f'{name},sha256={digest},{len(data)}\n'.encode()
            z.writestr(info, content)
    os.replace(tmp, wheel)


if editable_wheel is not None:

    class EditableWheelWithHint(editable_wheel):
        """``editable_wheel`` whose wheel also carries :data:`HINT_FILES`
        (setuptools' editable wheels hold only setuptools' own files)."""

        def run(self):
            super().run()
            dist = self.distribution.get_name().replace('-', '_')
            for wheel in glob.glob(
                    osp.join(str(self.dist_dir), f'{dist}-*.editable-*.whl')):
                for name in HINT_FILES:
                    with open(
                            osp.join(osp.dirname(osp.abspath(__file__)), name),
                            'rb') as f:
                        add_file_to_wheel(wheel, name, f.read())


def read_requirements(name):
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith('#')
        ]


def read_version():
    scope = {}
    with open(osp.join('geminifusion_mmseg', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


if __name__ == '__main__':
    setup(
        name='geminifusion_mmseg',
        version=read_version(),
        description=('GeminiFusion RGB-D semantic segmentation for '
                     'MMSegmentation'),
        long_description=open('README.md').read()
        if osp.exists('README.md') else '',
        long_description_content_type='text/markdown',
        license='MIT',
        python_requires='>=3.8',
        packages=find_packages(
            include=['geminifusion_mmseg', 'geminifusion_mmseg.*']),
        install_requires=read_requirements('runtime.txt'),
        extras_require={
            # the export and converter tests need those packages
            'tests':
            read_requirements('tests.txt') + read_requirements('deploy.txt') +
            read_requirements('converters.txt'),
            'deploy':
            read_requirements('deploy.txt'),
            'converters':
            read_requirements('converters.txt'),
            'mmpretrain': ['mmpretrain>=1.0.0'],
        },
        cmdclass=dict(
            build_py=BuildPyWithMim,
            **({} if editable_wheel is None else dict(
                editable_wheel=EditableWheelWithHint))),
        zip_safe=False,
    )

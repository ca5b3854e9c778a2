"""Install geminifusion_mmseg (pure Python: no compiled extensions).

As OpenMMLab packages do for mim, the package carries
``geminifusion_mmseg/.mim/{configs,tools,demo,model-index.yml}``: copies in
wheels (and so in ``pip install .``), written into the build directory only;
relative symlinks to the repository's folders in editable installs
(``pip install -e .``), which are git-ignored. ``mim search / train / test /
run geminifusion_mmseg ...`` read them from a wheel install.
"""
import os
import os.path as osp
import shutil
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

#: What ``.mim`` holds (mmseg's ``add_mim_extension`` list, plus the demo).
MIM_FILES = ('configs', 'tools', 'demo', 'model-index.yml')
_MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc')


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
            # the export tests need the deployment packages
            'tests':
            read_requirements('tests.txt') + read_requirements('deploy.txt'),
            'deploy':
            read_requirements('deploy.txt'),
            'mmpretrain': ['mmpretrain>=1.0.0'],
        },
        cmdclass={'build_py': BuildPyWithMim},
        zip_safe=False,
    )

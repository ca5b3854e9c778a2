"""Install geminifusion_mmseg (pure Python: no compiled extensions)."""
import os.path as osp
from setuptools import find_packages, setup


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


setup(
    name='geminifusion_mmseg',
    version=read_version(),
    description='GeminiFusion RGB-D semantic segmentation for MMSegmentation',
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
    zip_safe=False,
)

"""Shared test set-up: register the plugin and use mmseg's default scope;
under pytest-xdist (README's ``-n logical``) the intra-op threads are shared
out among the workers, so that N workers do not run N x cores threads."""
import os

import pytest
import torch
from mmengine.registry import init_default_scope

import geminifusion_mmseg  # noqa: F401  (registers modules, compat set-up)

init_default_scope('mmseg')

_WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if _WORKERS > 1:
    torch.set_num_threads(max(1, torch.get_num_threads() // _WORKERS))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='module')
def one_thread():
    """One intra-op thread for a module (``pytestmark =
    pytest.mark.usefixtures('one_thread')``): on tiny tensors it is faster,
    and much faster on a shared, busy CPU (no spinning worker threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

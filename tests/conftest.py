"""Shared test set-up: register the plugin and use mmseg's default scope."""
import pytest
import torch
from mmengine.registry import init_default_scope

import geminifusion_mmseg  # noqa: F401  (registers modules, compat set-up)

init_default_scope('mmseg')


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

"""Shared test set-up: register the plugin and use mmseg's default scope."""
import pytest
import torch

import geminifusion_mmseg  # noqa: F401  (registers modules, compat set-up)
from mmengine.registry import init_default_scope

init_default_scope('mmseg')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield

"""Token sequences <-> feature maps (models/utils/token_maps.py)."""
import torch
import torch.nn as nn

from geminifusion_mmseg.models.utils.token_maps import (map_to_tokens,
                                                        tokens_to_map)


def test_round_trip_through_a_convolution_is_copy_free():
    """tokens -> channels-last map (a view) -> conv -> tokens (a view of
    the conv's channels-last output); the same values as
    ``flatten(2).transpose(1, 2)``."""
    torch.manual_seed(0)
    tokens = torch.randn(2, 5 * 7, 16)
    fmap = tokens_to_map(tokens, (5, 7))
    assert fmap.shape == (2, 16, 5, 7)
    assert fmap.data_ptr() == tokens.data_ptr()
    assert fmap.is_contiguous(memory_format=torch.channels_last)
    out = nn.Conv2d(16, 16, 3, padding=1, groups=16)(fmap)
    back = map_to_tokens(out)
    assert torch.equal(back, out.flatten(2).transpose(1, 2))
    if out.is_contiguous(memory_format=torch.channels_last):
        assert back.data_ptr() == out.data_ptr()
    # and for a contiguous NCHW map: the same strided view
    nchw = torch.randn(2, 16, 5, 7)
    view = map_to_tokens(nchw)
    assert view.data_ptr() == nchw.data_ptr()
    assert view.stride() == nchw.flatten(2).transpose(1, 2).stride()
    assert torch.equal(tokens_to_map(view, (5, 7)), nchw)

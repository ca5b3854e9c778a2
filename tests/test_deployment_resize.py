"""The exported graph's bicubic resize (two matrix products) against
``F.interpolate``, which the segmentor uses at test time."""
import pytest
import torch
import torch.nn.functional as F

from geminifusion_mmseg.deployment.resize import bicubic_matrix, bicubic_resize


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize(
    'size,out',
    [
        ((120, 160), (480, 640)),  # NYUDv2 logits -> input
        ((107, 140), (425, 560)),  # an odd input size
        ((3, 5), (13, 17)),  # every output near a border
        ((9, 7), (4, 3)),  # downscaling
        ((30, 40), (30, 41)),  # nearly the identity
        ((1, 1), (5, 7)),  # a single pixel
        ((6, 5), (1, 1)),  # a single output
    ])
def test_bicubic_resize_is_f_interpolate(size, out, align_corners):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    # in float64 the same function as PyTorch's kernel, borders included
    ref = F.interpolate(
        x, size=out, mode='bicubic', align_corners=align_corners)
    got = bicubic_resize(x, out, align_corners)
    assert got.shape == ref.shape and got.is_contiguous()
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    # in float32 both round the source coordinates (about 5e-5 from the
    # float64 values on unit-variance data at 425x560), each its own way
    ref32 = F.interpolate(
        x.float(), size=out, mode='bicubic', align_corners=align_corners)
    got32 = bicubic_resize(x.float(), out, align_corners)
    torch.testing.assert_close(got32, ref32, rtol=0, atol=5e-5)


def test_bicubic_matrix_rows():
    """Four taps per row, weights summing to one (Keys' kernel), border
    taps folded onto the edge pixels."""
    m = bicubic_matrix(10, 37)
    assert m.shape == (37, 10)
    torch.testing.assert_close(m.sum(1), torch.ones(37))
    assert int((m != 0).sum(1).max()) <= 4
    # output 0 lies left of input 0: its taps clamp to pixels 0..2
    assert torch.count_nonzero(m[0, 3:]) == 0

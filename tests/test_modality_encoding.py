"""ModalityEncoding: one encoding per modality, numpy and torch alike."""
import numpy as np
import pytest
import torch

from geminifusion_mmseg.datasets.transforms import (ModalityEncoding,
                                                    depth_missing_value,
                                                    encode_depth,
                                                    encode_modality,
                                                    modality_missing_value)

ENCODINGS = [
    ModalityEncoding('raw'),
    ModalityEncoding('scale', scale=1e-3),
    ModalityEncoding('clip', range=(500, 9000)),
    ModalityEncoding('clip', range=(10, 60)),
    ModalityEncoding('image'),
    ModalityEncoding('thermal'),
]


def _frames(enc: ModalityEncoding, rng: np.random.Generator, channels: int,
            dtype) -> np.ndarray:
    shape = (2, 7, 5) if channels == 1 else (2, 7, 5, channels)
    if np.issubdtype(dtype, np.floating):
        x = (rng.random(shape) * 9000).astype(dtype)
        x.flat[::11] = np.nan
        x.flat[5::13] = np.inf
        return x
    return rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)


@pytest.mark.parametrize('enc', ENCODINGS, ids=repr)
@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.float32])
def test_torch_encoding_equals_numpy_encoding_bit_for_bit(enc, dtype):
    rng = np.random.default_rng(0)
    for channels in ((1, 3, 4) if enc.encoding in ('image', 'thermal') else
                     (1, )):
        frames = _frames(enc, rng, channels, dtype)
        want = np.stack([enc.encode(f, 'f') for f in frames])
        got = enc.encode_tensor(torch.from_numpy(frames)).numpy()
        assert got.dtype == np.float32 and got.shape == (2, 3, 7, 5)
        np.testing.assert_array_equal(got, want.transpose(0, 3, 1, 2))


def test_hha_and_rgb_frames_are_taken_as_they_are():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (1, 4, 6, 3)).astype(np.uint8)
    for enc in (ModalityEncoding('hha'), ModalityEncoding('rgb')):
        np.testing.assert_array_equal(
            enc.encode_tensor(torch.from_numpy(x)).numpy()[0],
            enc.encode(x[0]).transpose(2, 0, 1))


def test_the_old_functions_are_the_encoding():
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    for name, kw in (('raw', {}), ('scale', dict(depth_scale=1e-3)),
                     ('clip', dict(depth_range=(1000, 5000)))):
        enc = ModalityEncoding(name, kw.get('depth_scale', 1.0),
                               kw.get('depth_range'))
        np.testing.assert_array_equal(
            encode_depth(depth, name, **kw), enc.encode(depth))
        assert depth_missing_value(name, kw.get('depth_scale', 1.0),
                                   kw.get('depth_range')) == \
            enc.missing_value()
    thermal = np.arange(48, dtype=np.uint8).reshape(3, 4, 4)
    np.testing.assert_array_equal(
        encode_modality(thermal, 'thermal'),
        np.repeat(thermal[..., 3:4].astype(np.float32), 3, axis=2))
    assert modality_missing_value('image') == 0.0


def test_missing_value_is_a_stored_zero_through_the_encoding():
    assert ModalityEncoding('clip', range=(1000, 5000)).missing_value() == 0.
    # min < 0: a stored 0 is not the bottom of the range
    assert ModalityEncoding('clip', range=(-10, 10)).missing_value() == 127.5
    assert ModalityEncoding('scale', scale=0.5).missing_value() == 0.
    assert ModalityEncoding('hha').missing_value() == 0.
    assert ModalityEncoding('rgb').missing_value() == 0.


@pytest.mark.parametrize('enc', ENCODINGS[:4], ids=repr)
def test_metres_round_trip(enc):
    metres = np.array([0.6, 1.25, 3.0, 8.5])
    back = enc.to_metres(enc.from_metres(metres, 1e-3), 1e-3)
    if enc.encoding == 'clip':
        low, high = enc.range
        metres = np.clip(metres, low * 1e-3, high * 1e-3)
    np.testing.assert_allclose(back, metres, rtol=1e-9)


def test_metres_need_a_metric_encoding():
    with pytest.raises(ValueError, match="'image' has no relation to metres"):
        ModalityEncoding('image').to_metres(np.zeros(2), 1e-3)


@pytest.mark.parametrize('name, cfg, match', [
    ('depth', 'sonar', "encodings\\['depth'\\]: unknown encoding 'sonar'"),
    ('depth', 3, "encodings\\['depth'\\] must be a string or a dict"),
    ('depth', dict(encoding='clip'), "'clip' needs range"),
    ('depth', dict(encoding='raw', offset=2), 'may give scale and range'),
    ('thermal', 'rgb', "the encoding 'rgb' is the one and only"),
    ('rgb', 'image', "the encoding 'rgb' is the one and only"),
])
def test_parse_errors_name_the_modality_and_value(name, cfg, match):
    with pytest.raises(ValueError, match=match):
        ModalityEncoding.parse(name, cfg)


def test_parse_and_dict_round_trip():
    enc = ModalityEncoding.parse('depth',
                                 dict(encoding='clip', range=[0, 10000]))
    assert enc.range == (0.0, 10000.0)
    assert ModalityEncoding.from_dict(enc.as_dict()) == enc
    assert ModalityEncoding.default_for('thermal').encoding == 'thermal'
    assert ModalityEncoding.default_for('event').encoding == 'image'


def test_torch_encoding_refuses_frames_it_cannot_read():
    with pytest.raises(ValueError, match="'raw' cannot read frames"):
        ModalityEncoding('raw').encode_tensor(torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match="'hha' expects"):
        ModalityEncoding('hha').encode_tensor(torch.zeros(1, 4, 4))

"""Reduced-precision inference (``geminifusion_mmseg.apis.precision``):
``init_model(..., precision='bf16')``, the CPU fallback, bad values."""
import copy
import logging
import os
import os.path as osp
from contextlib import contextmanager

import pytest
import torch
from mmengine.logging import MMLogger

from geminifusion_mmseg.apis import inference_model, init_model
from geminifusion_mmseg.apis.precision import (
    BF16_CONV_TOLERANCE, PRECISIONS, bf16_convolution_error, cpu_bf16_support,
    keep_wrong_bf16_convolutions_in_fp32, read_cpu_flags, resolve_precision,
    set_inference_precision)
from tests.helpers.synthetic_rgbd import make_nyudv2_tokenfusion
from tests.helpers.tiny_configs import write_tiny_config

BASE = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
SIZE = (64, 96)
NO_BF16 = ('fpu', 'sse2', 'avx', 'avx2', 'fma', 'avx512f')  # an AVX2/512 CPU
WITH_BF16 = NO_BF16 + ('avx512_bf16', )
# measured on the seeded tiny model below: 99.3% of the pixels keep their
# class under bf16 autocast (random weights: many near-ties)
MIN_AGREEMENT = 0.98

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


@contextmanager
def warnings_logged():
    records = []

    class _Handler(logging.Handler):

        def emit(self, record):
            if record.levelno == logging.WARNING:
                records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = _Handler(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny seeded model (zoo NYUDv2 config made small), its checkpoint
    and two synthetic RGB-D pairs."""
    tmp = tmp_path_factory.mktemp('precision')
    data = make_nyudv2_tokenfusion(
        tmp / 'data', num_train=1, num_test=2, size=SIZE)
    config = write_tiny_config(str(tmp / 'tiny.py'), BASE, data)
    torch.manual_seed(3)
    model = init_model(config)
    ckpt = str(tmp / 'ckpt.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    names = sorted(os.listdir(osp.join(data, 'rgb')))
    pairs = [(osp.join(data, 'rgb', n), osp.join(data, 'depth', n))
             for n in names]
    return dict(config=config, ckpt=ckpt, pairs=pairs)


def predict(model, pairs):
    results = inference_model(model, [p[0] for p in pairs],
                              [p[1] for p in pairs])
    return (torch.cat([r.pred_sem_seg.data.flatten() for r in results]),
            torch.cat([r.seg_logits.data.flatten() for r in results]))


def test_bf16_keeps_the_predictions_of_fp32(setup):
    fp32 = init_model(setup['config'], setup['ckpt'])
    # 'bf16-force': bf16 autocast whatever this CPU has
    bf16 = init_model(setup['config'], setup['ckpt'], precision='bf16-force')
    assert fp32.inference_autocast_dtype is None
    assert bf16.inference_autocast_dtype is torch.bfloat16
    pred32, logits32 = predict(fp32, setup['pairs'])
    pred16, logits16 = predict(bf16, setup['pairs'])
    # autocast ran (the logits differ), the logits come back in fp32
    assert logits16.dtype == torch.float32
    assert not torch.equal(logits16, logits32)
    rel = (logits16 - logits32).norm() / logits32.norm()
    assert rel < 0.05, float(rel)
    agreement = (pred16 == pred32).float().mean().item()
    print(f'bf16 vs fp32: argmax agreement {agreement:.4f}, logits rel. '
          f'difference {float(rel):.2e}')
    assert agreement >= MIN_AGREEMENT, agreement
    # the branch predictions too
    r16 = inference_model(bf16, *setup['pairs'][0])
    r32 = inference_model(fp32, *setup['pairs'][0])
    for name in ('pred_sem_seg_rgb', 'pred_sem_seg_depth'):
        same = (r16.get(name).data == r32.get(name).data).float().mean()
        assert same >= MIN_AGREEMENT, (name, float(same))


def test_fp32_is_the_model_as_before(setup):
    default = init_model(setup['config'], setup['ckpt'])
    explicit = init_model(setup['config'], setup['ckpt'], precision='fp32')
    a = predict(default, setup['pairs'])[1]
    b = predict(explicit, setup['pairs'])[1]
    assert torch.equal(a, b)


def test_bf16_without_bf16_instructions_falls_back_to_fp32_with_a_warning():
    with warnings_logged() as warned:
        assert resolve_precision('bf16', 'cpu', NO_BF16) == 'fp32'
    assert len(warned) == 1
    assert 'no BF16 instructions' in warned[0] and 'fp32' in warned[0]
    assert 'emulated' in warned[0] and "'bf16-force'" in warned[0]
    with warnings_logged() as warned:
        assert resolve_precision('bf16-force', 'cpu', NO_BF16) == 'bf16'
    assert len(warned) == 1 and 'emulated' in warned[0]
    with warnings_logged() as warned:
        assert resolve_precision('bf16', 'cpu', WITH_BF16) == 'bf16'
        assert resolve_precision('fp32', 'cpu', NO_BF16) == 'fp32'
    assert warned == []


def test_this_cpu_is_judged_by_its_flags(setup):
    """On this machine: bf16 runs iff /proc/cpuinfo lists a BF16 flag,
    with the fallback warning otherwise."""
    flags = read_cpu_flags()
    native = bool({'avx512_bf16', 'amx_bf16'} & flags)
    assert cpu_bf16_support()[0] == native
    with warnings_logged() as warned:
        model = init_model(setup['config'], setup['ckpt'], precision='bf16')
    expected = torch.bfloat16 if native else None
    assert model.inference_autocast_dtype is expected
    fallback = [w for w in warned if 'no BF16 instructions' in w]
    assert bool(fallback) == (not native)


class _WrongInBF16(torch.nn.Conv2d):
    """A convolution whose result is off by a constant under autocast,
    as PyTorch's bf16 kernels are for some shapes on AMX CPUs."""

    def forward(self, x):
        out = super().forward(x)
        if torch.is_autocast_enabled('cpu'):
            out = out + 10.0
        return out


def test_wrong_bf16_convolutions_run_in_fp32_and_are_named():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), _WrongInBF16(8, 8, 2, stride=2))
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
    with warnings_logged() as warned:
        kept = keep_wrong_bf16_convolutions_in_fp32(model)
    assert kept == ['1']
    assert len(warned) == 1 and ': 1' in warned[0]
    assert '_WrongInBF16(8, 8, kernel_size=(2, 2), stride=(2, 2))' in warned[0]
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)
        # the copy's convolution runs in fp32 too, on its own weights
        copied = copy.deepcopy(model)
        copied[1].bias.data += 1
        out_copy = copied(x)
    assert out.dtype == torch.float32
    rel = (out - ref).norm() / ref.norm()
    assert rel < BF16_CONV_TOLERANCE, float(rel)
    assert torch.allclose(out_copy, out + 1, atol=1e-5)
    # checked once: a second call finds nothing new, and no warning
    with warnings_logged() as warned:
        assert keep_wrong_bf16_convolutions_in_fp32(model) == []
    assert warned == []


def test_narrow_strided_convolution_is_right_under_bf16_on_this_cpu():
    """The shape PyTorch 2.13 gets wrong in bf16 on AMX CPUs (the 16-channel
    spatial reduction of a tiny MiT): after the check it is right on every
    CPU, whether it was kept in fp32 or not."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 16, 4, stride=4)
    x = torch.randn(2, 16, 16, 24)
    with torch.no_grad():
        ref = conv(x)
        keep_wrong_bf16_convolutions_in_fp32(conv)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = conv(x).float()
    rel = (out - ref).norm() / ref.norm()
    assert rel < BF16_CONV_TOLERANCE, float(rel)
    assert bf16_convolution_error(conv) == bf16_convolution_error(conv)


def test_set_inference_precision_reaches_a_wrapped_segmentor(setup):
    model = init_model(setup['config'], setup['ckpt'])
    wrapper = torch.nn.ModuleDict(dict(module=model))
    assert set_inference_precision(wrapper, 'bf16', 'cpu', WITH_BF16) == 'bf16'
    assert model.inference_autocast_dtype is torch.bfloat16
    assert set_inference_precision(wrapper, 'fp32') == 'fp32'
    assert model.inference_autocast_dtype is None
    # fp32 again: no convolution is left with an fp32 override
    assert all('forward' not in m.__dict__ for m in model.modules())
    with pytest.raises(ValueError, match='no GeminiFusion segmentor'):
        set_inference_precision(
            torch.nn.Linear(2, 2), 'bf16', 'cpu', WITH_BF16)


@pytest.mark.parametrize('bad', ['fp16', 'BF16', 'int8', ''])
def test_bad_precision_is_a_clear_error(setup, bad):
    with pytest.raises(ValueError) as err:
        init_model(setup['config'], setup['ckpt'], precision=bad)
    msg = str(err.value)
    assert f'precision={bad!r}' in msg
    assert all(p in msg for p in PRECISIONS)

"""Reduced-precision inference (``geminifusion_mmseg.apis.precision``):
``init_model(..., precision='bf16')``, the CPU fallback, bad values."""
import logging
import os
import os.path as osp
from contextlib import contextmanager

import pytest
import torch
from mmengine.logging import MMLogger

from geminifusion_mmseg.apis import inference_model, init_model
from geminifusion_mmseg.apis.precision import (PRECISIONS, cpu_bf16_support,
                                               read_cpu_flags,
                                               resolve_precision,
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
    assert bool(warned) == (not native)


def test_set_inference_precision_reaches_a_wrapped_segmentor(setup):
    model = init_model(setup['config'], setup['ckpt'])
    wrapper = torch.nn.ModuleDict(dict(module=model))
    assert set_inference_precision(wrapper, 'bf16', 'cpu', WITH_BF16) == 'bf16'
    assert model.inference_autocast_dtype is torch.bfloat16
    assert set_inference_precision(wrapper, 'fp32') == 'fp32'
    assert model.inference_autocast_dtype is None
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

"""Inference without depth: ``inference_model(model, rgb, depth=None)`` and
``demo/image_demo.py --no-depth``."""
import logging
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from geminifusion_mmseg.apis import inference_model, init_model
from tests.helpers.synthetic_rgbd import make_nyudv2_tokenfusion
from tests.helpers.tiny_configs import REPO, save_checkpoint, write_tiny_config

BASE = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
SIZE = (40, 56)


def pipeline(loader):
    return f"""
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBDImageFromFile', {loader}),
    dict(type='LoadRGBDAnnotations'),
    dict(type='PackSegInputs')]))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('no_depth')
    data = make_nyudv2_tokenfusion(
        tmp / 'data', num_train=1, num_test=2, size=SIZE)
    models = {}
    for name, loader in (
        ('raw', "depth_encoding='raw'"),
        ('clip', "depth_encoding='clip', depth_range=(-1000, 9000)"),
    ):
        config = write_tiny_config(
            str(tmp / f'{name}.py'), BASE, data, extra=pipeline(loader))
        torch.manual_seed(0)
        models[name] = init_model(config)
        models[name].eval()
    ckpt = save_checkpoint(models['raw'], tmp / 'raw.pth')
    names = sorted(os.listdir(osp.join(data, 'rgb')))
    return dict(
        tmp=tmp,
        models=models,
        ckpt=ckpt,
        config=str(tmp / 'raw.py'),
        data=data,
        rgbs=[osp.join(data, 'rgb', n) for n in names],
        depths=[osp.join(data, 'depth', n) for n in names])


def logits(result):
    return result.seg_logits.data


@pytest.mark.parametrize('encoding,stored_missing', [('raw', 0), ('clip', 0)])
def test_depth_none_is_depth_missing(setup, encoding, stored_missing):
    model = setup['models'][encoding]
    rgb = setup['rgbs'][0]
    records = []

    class _Handler(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    handler = _Handler(level=logging.WARNING)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        none = inference_model(model, rgb)  # depth=None by default
    finally:
        logger.removeHandler(handler)
    assert any('no depth' in m and 'MISSING' in m for m in records), records
    assert none.metainfo['depth_missing'] is True
    # the same as a depth map that measured nothing (stored 0) ...
    zeros = np.full(SIZE, stored_missing, np.uint16)
    same = inference_model(model, rgb, zeros)
    torch.testing.assert_close(logits(none), logits(same))
    assert same.metainfo['depth_missing'] is False
    # ... and not the same as the real depth
    real = inference_model(model, rgb, setup['depths'][0])
    assert (logits(none) - logits(real)).abs().max() > 1e-4
    assert none.pred_sem_seg.data.shape[-2:] == SIZE


def test_depth_none_in_batches(setup):
    model = setup['models']['raw']
    rgbs = setup['rgbs']
    rgbs = rgbs[:2]
    out = inference_model(model, rgbs)  # every pair without depth
    mixed = inference_model(model, rgbs, [None, setup['depths'][1]])
    single = [inference_model(model, r) for r in rgbs]
    torch.testing.assert_close(logits(out[0]), logits(single[0]))
    torch.testing.assert_close(logits(out[1]), logits(single[1]))
    torch.testing.assert_close(logits(mixed[0]), logits(single[0]))
    real = inference_model(model, rgbs[1], setup['depths'][1])
    torch.testing.assert_close(logits(mixed[1]), logits(real))


def run_demo(*args):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable,
         osp.join(REPO, 'demo', 'image_demo.py'), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300)


def test_demo_no_depth(setup):
    out = str(setup['tmp'] / 'demo' / 'one.png')
    run = run_demo(setup['rgbs'][0], setup['config'], setup['ckpt'],
                   '--no-depth', '--out-file', out)
    assert run.returncode == 0, run.stderr
    assert 'depth missing' in run.stdout
    assert 'MISSING' in run.stdout + run.stderr  # the API's warning
    assert cv2.imread(out) is not None
    out_dir = str(setup['tmp'] / 'demo_dir')
    run = run_demo(
        osp.join(setup['data'], 'rgb'), setup['config'], setup['ckpt'],
        '--no-depth', '--out-dir', out_dir)
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(out_dir)) == sorted(
        osp.basename(p) for p in setup['rgbs'])
    # DEPTH and --no-depth together, or neither: a clear error
    both = run_demo(setup['rgbs'][0], setup['depths'][0], setup['config'],
                    setup['ckpt'], '--no-depth', '--out-file', out)
    assert both.returncode == 2 and '--no-depth takes RGB CONFIG' in \
        both.stderr
    neither = run_demo(setup['rgbs'][0], setup['config'], setup['ckpt'],
                       '--out-file', out)
    assert neither.returncode == 2 and 'DEPTH is missing' in neither.stderr

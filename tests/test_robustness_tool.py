"""tools/analysis_tools/robustness.py end to end on a tiny model."""
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import cv2
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import DATASETS

from tests.helpers.tiny_configs import REPO, load_tool, tiny_test_run

QUICKSTART = ('configs/quickstart/'
              'geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py')
TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'robustness.py')
ENV = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')


def load_robustness_tool():
    return load_tool(TOOL)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny quickstart config (4 test images of 48x64) and a checkpoint
    of its randomly initialised model."""
    tmp = tmp_path_factory.mktemp('robustness')
    return tiny_test_run(tmp, QUICKSTART, 'tiny_quickstart')


def test_depth_missing_changes_the_prediction_not_the_label(setup):
    tool = load_robustness_tool()
    cfg = Config.fromfile(setup['config'])
    outputs = {}
    for name in ('clean', 'depth_missing'):
        pipeline = tool.corrupted_pipeline(
            cfg.test_dataloader.dataset.pipeline, name, None)
        dataset = DATASETS.build(
            dict(cfg.test_dataloader.dataset, pipeline=pipeline))
        data = dataset[0]
        with torch.no_grad():
            result = setup['model'].test_step(
                dict(
                    inputs=[data['inputs']],
                    data_samples=[data['data_samples']]))[0]
        outputs[name] = (data, result)
    clean, missing = outputs['clean'][0], outputs['depth_missing'][0]
    assert (missing['inputs'][3:] == 0).all()
    assert (clean['inputs'][3:] > 0).any()
    torch.testing.assert_close(missing['inputs'][:3], clean['inputs'][:3])
    torch.testing.assert_close(missing['data_samples'].gt_sem_seg.data,
                               clean['data_samples'].gt_sem_seg.data)
    logits = [outputs[k][1].seg_logits.data for k in outputs]
    assert (logits[0] - logits[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match='has no LoadRGBDImageFromFile'):
        tool.corrupted_pipeline([dict(type='LoadImageFromFile')],
                                'depth_missing', None)


def _run_tool(setup, out_dir, *extra, launcher=None):
    args = [
        setup['config'], setup['ckpt'], '--corruptions', 'depth_missing',
        'depth_noise', 'rgb_missing', '--severities', '1', '3', '--out-dir',
        str(out_dir), *extra
    ]
    if launcher is None:
        cmd = [sys.executable, TOOL] + args
    else:
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
            '2', '--master_port',
            str(port), TOOL
        ] + args + ['--launcher', launcher]
    run = subprocess.run(
        cmd,
        env=ENV,
        cwd=setup['tmp'],
        capture_output=True,
        text=True,
        timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(out_dir / 'robustness.json') as f:
        return json.load(f), run.stdout


def test_tool_end_to_end(setup):
    out_dir = setup['tmp'] / 'out'
    summary, stdout = _run_tool(setup, out_dir)
    conditions = [(r['corruption'], r['severity']) for r in summary['results']]
    assert conditions == [('clean', None), ('depth_missing', None),
                          ('depth_noise', 1), ('depth_noise', 3),
                          ('rgb_missing', None)]
    assert summary['num_samples'] == 4 and summary['world_size'] == 1
    assert summary['loader']['depth_encoding'] == 'raw'
    for r in summary['results']:
        for key in ('mIoU', 'rgb.mIoU', 'depth.mIoU'):
            assert 0 <= r['metrics'][key] <= 100
            assert r['drop'][key] == pytest.approx(
                r['metrics'][key] - summary['results'][0]['metrics'][key],
                abs=0.011)
    assert all(v == 0 for v in summary['results'][0]['drop'].values())
    # the table: a row per condition, with the change vs clean
    assert 'fused mIoU' in stdout and 'depth mIoU' in stdout
    assert re.search(r'depth_noise\s+3\s+[\d.]+ \([+-][\d.]+\)', stdout)
    with open(out_dir / 'robustness.md') as f:
        assert f.read().count('\n') == 2 + len(conditions)
    png = cv2.imread(str(out_dir / 'robustness.png'))
    assert png is not None and png.shape[1] > png.shape[0]

    # the clean run is exactly tools/test.py's evaluation
    test = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'test.py'), setup['config'], setup['ckpt'],
        '--work-dir',
        str(setup['tmp'] / 'test')
    ],
                          env=ENV,
                          cwd=setup['tmp'],
                          capture_output=True,
                          text=True,
                          check=True)
    line = re.search(r'mIoU by branch \(ens = fused prediction\): (.*)',
                     test.stdout + test.stderr).group(1)
    reported = dict(
        (k, float(v)) for k, v in re.findall(r'([\w.]+): ([\d.]+)', line))
    clean = summary['results'][0]['metrics']
    for key in ('mIoU', 'rgb.mIoU', 'depth.mIoU'):
        assert clean[key] == pytest.approx(reported[key], abs=1e-6)

    # unknown corruption: the error lists the valid names
    bad = subprocess.run([
        sys.executable, TOOL, setup['config'], setup['ckpt'], '--corruptions',
        'depth_blur'
    ],
                         env=ENV,
                         cwd=setup['tmp'],
                         capture_output=True,
                         text=True)
    assert bad.returncode != 0
    assert "invalid choice: 'depth_blur'" in bad.stderr
    assert 'depth_holes' in bad.stderr


def test_tool_two_processes_match_one(setup):
    """--launcher pytorch (2 CPU processes, gloo): same numbers, since the
    corruptions are seeded per sample, not per process."""
    if osp.isfile(setup['tmp'] / 'out' / 'robustness.json'):
        with open(setup['tmp'] / 'out' / 'robustness.json') as f:
            one = json.load(f)  # from test_tool_end_to_end
    else:
        one, _ = _run_tool(setup, setup['tmp'] / 'one')
    two, _ = _run_tool(setup, setup['tmp'] / 'two', launcher='pytorch')
    assert two['world_size'] == 2
    for a, b in zip(one['results'], two['results']):
        assert (a['corruption'], a['severity']) == (b['corruption'],
                                                    b['severity'])
        for key in ('mIoU', 'rgb.mIoU', 'depth.mIoU'):
            assert a['metrics'][key] == pytest.approx(
                b['metrics'][key], abs=1e-6)

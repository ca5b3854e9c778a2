"""tools/test.py (and dist_test.sh, which runs it) loads checkpoints as
strictly as init_model, names files that are not checkpoints, and warns
when the checkpoint's, the model's and the dataset's classes disagree."""
import glob
import itertools
import os
import os.path as osp
import runpy
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from geminifusion_mmseg.datasets import NYUDV2_CLASSES
from tests.helpers import make_nyudv2_tokenfusion
from tests.helpers.tiny_configs import REPO, write_tiny_config

NYU_B3 = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
TEST_TOOL = osp.join(REPO, 'tools', 'test.py')
_RUNS = itertools.count()
PLAIN_TEST_PIPELINE = """
val_dataloader['dataset']['pipeline'] = [
    dict(type='LoadRGBDImageFromFile'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='PackSegInputs'),
]
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('testtool')
    root = make_nyudv2_tokenfusion(tmp / 'nyu', num_train=1, num_test=2)

    def config(name, extra=''):
        return write_tiny_config(
            str(tmp / f'{name}.py'),
            NYU_B3,
            root,
            test_ann_file='test.txt',
            extra=PLAIN_TEST_PIPELINE + extra)

    def checkpoint(name, cfg, meta=None):
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(cfg).model)
        path = str(tmp / f'{name}.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=meta or {}), path)
        return path

    return dict(tmp=tmp, config=config, checkpoint=checkpoint)


def _test(monkeypatch, setup, cfg, ckpt):
    """tools/test.py in this process; returns its log text.

    Each call gets its own experiment name: mmengine keys its logger by
    that name (config name + timestamp to the second), so two runs of one
    config within a second would share the first run's log file.
    """
    name = osp.basename(ckpt)
    work_dir = str(setup['tmp'] / f'wd_{name}')
    monkeypatch.setattr(sys, 'argv', [
        'test.py', cfg, ckpt, '--work-dir', work_dir, '--cfg-options',
        f'experiment_name=test_tool_{name}_{next(_RUNS)}'
    ])
    runpy.run_path(TEST_TOOL, run_name='__main__')
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(logs[0]) as f:
        return f.read()


def test_checkpoint_of_another_model_is_refused(monkeypatch, setup):
    cfg = setup['config']('nyu')
    six = setup['checkpoint']('six', setup['config'](
        'six', "model['decode_head']['num_classes'] = 6"))
    with pytest.raises(SystemExit) as e:
        _test(monkeypatch, setup, cfg, six)
    msg = str(e.value)
    assert f'tools/test.py: checkpoint {six} does not fit the model' in msg
    assert ('decode_head.conv_seg.weight: checkpoint (6, 32, 1, 1) vs model '
            '(40, 32, 1, 1)') in msg
    assert 'Is it the config this checkpoint was trained or converted for' \
        in msg


@pytest.mark.parametrize('content,what', [(b'', 'is empty (0 bytes)'),
                                          (b'a text file\n', 'holds text')])
def test_file_that_is_not_a_checkpoint_is_named(monkeypatch, setup, content,
                                                what):
    path = str(setup['tmp'] / f'bad{len(content)}.pth')
    open(path, 'wb').write(content)
    with pytest.raises(SystemExit) as e:
        _test(monkeypatch, setup, setup['config']('nyu'), path)
    assert str(e.value).startswith('error: ') and what in str(e.value)
    assert path in str(e.value)


def test_other_class_names_and_counts_are_warned(monkeypatch, setup):
    cfg = setup['config']('nyu')
    named = setup['checkpoint'](
        'renamed', cfg,
        dict(dataset_meta=dict(classes=[f'class{i}' for i in range(40)])))
    log = _test(monkeypatch, setup, cfg, named)
    assert (f'checkpoint {named} was trained on 40 classes (class0, class1, '
            'class2, class3, ...), the test dataset (NYUDv2Dataset) has 40 '
            "(wall, floor, cabinet, bed, ...); class 0 is 'class0' in the "
            "checkpoint and 'wall' in the dataset") in log
    assert 'mIoU' in log  # it still runs
    # a 6-class model scored on the 40 NYUDv2 classes
    six_cfg = setup['config']('six', "model['decode_head']['num_classes'] = 6")
    six = setup['checkpoint']('six_ok', six_cfg)
    log = _test(monkeypatch, setup, six_cfg, six)
    assert ('the model predicts 6 classes (decode_head.num_classes) but the '
            'test dataset (NYUDv2Dataset) names 40') in log
    assert len(NYUDV2_CLASSES) == 40


def test_dist_test_loads_strictly_in_every_process(setup):
    cfg = setup['config']('nyu')
    six = setup['checkpoint']('six', setup['config'](
        'six', "model['decode_head']['num_classes'] = 6"))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        PYTHONPATH=REPO,
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable,
        PORT=str(port))
    run = subprocess.run([
        'bash',
        osp.join(REPO, 'tools', 'dist_test.sh'), cfg, six, '2', '--work-dir',
        str(setup['tmp'] / 'wd_dist')
    ],
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert run.returncode != 0
    assert run.stderr.count(f'tools/test.py: checkpoint {six} does not fit') \
        == 2  # both ranks refuse, neither tests
    assert 'Epoch(test)' not in run.stdout + run.stderr

"""mmseg's OWN tools, as its wheel ships them (``mmseg/.mim/tools``), on our
configs and checkpoints: train.py, test.py (``--show-dir``, ``--show``,
``--tta``, ``--out``), analysis_tools/analyze_logs.py,
analysis_tools/confusion_matrix.py, misc/print_config.py (through
``python -m geminifusion_mmseg``: it imports ``mmseg.apis`` first) and
misc/publish_model.py. One tiny quickstart run (mmseg's train.py, 4
iterations) is shared by the tests of this module. Also: our tools/test.py
takes mmseg's ``--show`` / ``--wait-time``.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

import cv2
import mmseg
import pytest
import torch

from tests.helpers.tiny_configs import REPO, tiny_quickstart_config
from tests.helpers.torch_only import load_in_torch_only_process

MMSEG_TOOLS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')
ENV = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', MPLBACKEND='Agg')


def mmseg_tool(name, *args, cwd, check=True, runner=False):
    """Run ``mmseg/.mim/tools/<name>`` (through ``python -m
    geminifusion_mmseg`` with ``runner``)."""
    path = osp.join(MMSEG_TOOLS, name)
    assert osp.isfile(path), f'mmseg wheel lacks {path}'
    prefix = ['-m', 'geminifusion_mmseg'] if runner else []
    run = subprocess.run([sys.executable, *prefix, path, *map(str, args)],
                         env=ENV,
                         cwd=cwd,
                         capture_output=True,
                         text=True)
    if check:
        assert run.returncode == 0, (run.stdout[-3000:] + run.stderr[-3000:])
    return run


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(folder, config, work dir) of a 4-iteration run of mmseg's
    train.py (checkpoints at 2 and 4, validation and best at 4)."""
    tmp = tmp_path_factory.mktemp('mmseg_tools')
    cfg = tiny_quickstart_config(tmp, 'tiny', max_iters=4, interval=2)
    mmseg_tool('train.py', cfg, '--work-dir', tmp / 'wd', cwd=tmp)
    return tmp, cfg, tmp / 'wd'


def test_train_writes_latest_and_best_checkpoints(trained):
    _, _, wd = trained
    for name in ('iter_2.pth', 'iter_4.pth', 'best_mIoU_iter_4.pth'):
        assert osp.isfile(wd / name), sorted(os.listdir(wd))


def test_checkpoints_load_with_plain_torch_load(trained):
    _, _, wd = trained
    for name in ('iter_4.pth', 'best_mIoU_iter_4.pth'):
        assert load_in_torch_only_process(str(wd / name)).split()[0] == '4'


def test_publish_model(trained):
    tmp, _, wd = trained
    mmseg_tool(
        'misc/publish_model.py',
        wd / 'best_mIoU_iter_4.pth',
        tmp / 'published.pth',
        cwd=tmp)
    # it renames the file in a background `mv` that it does not wait for
    for _ in range(100):
        found = glob.glob(str(tmp / 'published-*.pth'))
        if found:
            break
        time.sleep(0.1)
    (published, ) = found
    ckpt = torch.load(published)  # weights-only, without the plugin
    assert 'optimizer' not in ckpt and 'state_dict' in ckpt
    assert load_in_torch_only_process(published).split()[0] == '4'


def _panels(folder):
    return sorted(glob.glob(osp.join(folder, 'vis_data', 'vis_image', '*')))


def test_test_tta_show_dir_out_and_confusion_matrix(trained):
    """--show-dir: mmseg's trigger_visualization_hook sets
    default_hooks.visualization (our RGB | depth | GT | pred panels, of an
    unflipped view under --tta) and the visualizer's save_dir; --tta: the
    config's tta_pipeline and tta_model; --out: prediction PNGs, which
    confusion_matrix.py reads back with the config's dataset."""
    tmp, cfg, wd = trained
    run = mmseg_tool(
        'test.py',
        cfg,
        wd / 'best_mIoU_iter_4.pth',
        '--work-dir',
        tmp / 'test',
        '--tta',
        '--show-dir',
        tmp / 'vis',
        '--out',
        tmp / 'preds',
        cwd=tmp)
    assert 'mIoU by branch (ens = fused prediction)' in run.stdout + \
        run.stderr
    panels = _panels(tmp / 'vis')
    assert len(panels) == 6, panels  # one per validation image
    panel = cv2.imread(panels[0])
    assert panel.shape[1] == 4 * 64  # rgb | depth | ground truth | pred
    preds = sorted(os.listdir(tmp / 'preds'))
    assert len(preds) == 6
    assert cv2.imread(str(tmp / 'preds' / preds[0])).shape[:2] == (48, 64)

    mmseg_tool(
        'analysis_tools/confusion_matrix.py',
        cfg,
        tmp / 'preds',
        tmp / 'cm',
        cwd=tmp)
    matrix = cv2.imread(str(tmp / 'cm' / 'confusion_matrix.png'))
    assert matrix is not None and matrix.shape[0] > 100


def test_test_show(trained):
    """--show shows the panels (Agg backend here) for --wait-time seconds
    instead of saving them, as mmseg's SegVisualizationHook does."""
    tmp, cfg, wd = trained
    run = mmseg_tool(
        'test.py',
        cfg,
        wd / 'iter_4.pth',
        '--work-dir',
        tmp / 'test_show',
        '--show',
        '--wait-time',
        '0.01',
        cwd=tmp)
    assert 'mIoU' in run.stdout + run.stderr
    assert not glob.glob(str(tmp / 'test_show' / '*' / 'vis_data' / 'vis_*'))


def test_analyze_logs(trained):
    tmp, _, wd = trained
    (log, ) = glob.glob(str(wd / '*' / 'vis_data' / 'scalars.json'))
    with open(log) as f:
        records = [json.loads(line) for line in f]
    assert any('mIoU' in r for r in records)
    mmseg_tool(
        'analysis_tools/analyze_logs.py',
        log,
        '--keys',
        'loss',
        'mIoU',
        '--legend',
        'loss',
        'mIoU',
        '--out',
        tmp / 'curve.png',
        cwd=tmp)
    assert cv2.imread(str(tmp / 'curve.png')) is not None


def test_print_config_through_the_runner(trained):
    """print_config.py imports mmseg.apis before reading the config: run
    through ``python -m geminifusion_mmseg`` (README "Install");
    ``--graph`` builds our model with mmseg's init_model."""
    tmp, cfg, _ = trained
    run = mmseg_tool(
        'misc/print_config.py', cfg, '--graph', cwd=tmp, runner=True)
    assert "type='MultiModalEncoderDecoder'" in run.stdout
    assert 'GeminiFusionMiT' in run.stdout  # the model graph
    assert osp.isfile(tmp / 'example.py')


def test_our_test_py_takes_mmsegs_show_flags(tmp_path, monkeypatch):
    import importlib.util

    from mmengine.config import Config
    from mmseg.registry import HOOKS
    spec = importlib.util.spec_from_file_location(
        'gf_test_tool', osp.join(REPO, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    cfg_path = tiny_quickstart_config(tmp_path, 'c', max_iters=2, interval=2)
    monkeypatch.setattr(sys, 'argv', [
        'test.py', cfg_path, 'ckpt.pth', '--show', '--wait-time', '0.5',
        '--show-dir', 'panels'
    ])
    args = tool.parse_args()
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(tmp_path / 'wd')
    assert not cfg.default_hooks.visualization.draw  # off unless asked
    tool.trigger_visualization_hook(cfg, args)
    hook = HOOKS.build(cfg.default_hooks.visualization)
    assert (hook.draw, hook.show, hook.wait_time) == (True, True, 0.5)
    assert hook.out_dir == str(tmp_path / 'wd' / 'panels')


def _sample(path, h, w, flip=False):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_path=path, flip=flip))
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, h, w, dtype=torch.long))
    sample.pred_sem_seg = PixelData(data=torch.ones(1, h, w, dtype=torch.long))
    return sample


def test_panels_of_rgb_only_and_tta_batches(tmp_path):
    """A 3-channel (RGB-only) input gets RGB | GT | pred; with --tta the
    largest unflipped view is drawn."""
    from mmseg.evaluation import IoUMetric

    from geminifusion_mmseg.engine.hooks import RGBDVisualizationHook
    metric = IoUMetric()
    metric.dataset_meta = dict(
        classes=('a', 'b'), palette=[[0, 0, 0], [0, 255, 0]])
    hook = RGBDVisualizationHook(out_dir=str(tmp_path))
    rgb = torch.full((3, 8, 10), 50, dtype=torch.uint8)
    hook._draw(None, 'test', metric, 0, dict(inputs=[rgb]),
               [_sample('a/rgb_only.png', 8, 10)])
    panel = cv2.imread(str(tmp_path / 'rgb_only.png'))
    assert panel.shape[1] == 3 * 10

    views = [
        torch.full((6, 4, 5), 10, dtype=torch.uint8),  # small, unflipped
        torch.full((6, 8, 10), 99, dtype=torch.uint8),  # large, flipped
        torch.full((6, 8, 10), 200, dtype=torch.uint8),  # large, unflipped
    ]
    samples = [[_sample('a/tta.png', 8, 10, flip=f)]
               for f in (False, True, False)]
    hook._draw(None, 'test', metric, 0,
               dict(inputs=[[v] for v in views], data_samples=samples),
               [_sample('a/tta.png', 8, 10)])
    panel = cv2.imread(str(tmp_path / 'tta.png'))
    assert panel.shape[1] == 4 * 10  # rgb | depth | ground truth | pred
    assert panel[-1, 0].tolist() == [200, 200, 200]  # the RGB tile

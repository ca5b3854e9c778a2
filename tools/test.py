"""Test (and evaluate) a GeminiFusion RGB-D segmentor (the mmseg way).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
                         [--show-dir DIR] [--show [--wait-time S]] [--tta]
                         [--cfg-options k=v ...] [--launcher pytorch]
                         [--precision fp32|bf16|bf16-force]

Prints mmseg's per-class IoU/Acc table and mIoU of the fused (ensemble)
prediction, then the mIoU of the rgb and depth branches. The checkpoint is
loaded strictly, as ``geminifusion_mmseg.apis.init_model`` loads it (a
checkpoint that does not fit the config is refused, naming the keys;
released ``.pth.tar`` files are converted in memory); a warning names both
sides when its classes differ from the test dataset's. ``--precision bf16``
predicts under bf16 autocast (on a CPU without BF16 instructions: a warning
and fp32; ``bf16-force`` runs bf16 anyway; docs/inference.md).
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import geminifusion_mmseg  # noqa: F401  (registers modules; mmcv-lite set-up)
from geminifusion_mmseg.apis.precision import (PRECISIONS,
                                               set_inference_precision)
from geminifusion_mmseg.checkpoints import (CheckpointLoadError,
                                            CheckpointMismatchError,
                                            ReleasedCheckpointError,
                                            load_test_checkpoint)
from geminifusion_mmseg.utils.launch import setup_launcher


def parse_args():
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) an RGB-D model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='if specified, the evaluation metric results will be dumped '
        'into the directory as json')
    parser.add_argument(
        '--out',
        type=str,
        help='directory to save the predicted label PNGs (ensemble)')
    parser.add_argument(
        '--show-dir',
        help='directory where RGB | depth | ground truth | prediction '
        'panels are saved (relative paths are inside the work dir)')
    parser.add_argument(
        '--show',
        action='store_true',
        help='show each RGB | depth | ground truth | prediction panel in a '
        'window')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each shown panel stays (--show)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='multi-scale + flip test-time augmentation (the config\'s '
        'tta_pipeline and tta_model)')
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='fp32',
        help='inference precision: fp32 (default), bf16 (autocast; on a CPU '
        'without BF16 instructions a warning and fp32) or bf16-force')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    """Switch on ``default_hooks.visualization`` as mmseg's test.py does.

    ``--show-dir`` panels go to DIR (relative: inside the work dir), one
    ``<image stem>.png`` each; ``--show`` shows them for ``--wait-time``
    seconds. A config without the hook gets ``RGBDVisualizationHook``.
    """
    default_hooks = cfg.setdefault('default_hooks', {})
    hook = default_hooks.setdefault('visualization',
                                    dict(type='RGBDVisualizationHook'))
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        show_dir = args.show_dir if osp.isabs(args.show_dir) else osp.join(
            cfg.work_dir, args.show_dir)
        if str(hook['type']).split('.')[-1] == 'RGBDVisualizationHook':
            hook['out_dir'] = show_dir
        else:  # e.g. mmseg's SegVisualizationHook
            cfg.visualizer['save_dir'] = show_dir


def main():
    args = parse_args()
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            raise SystemExit(f'file not found: {path}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    # loaded below, strictly (as init_model), not by mmengine's lenient load
    cfg.load_from = None

    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args)

    if args.tta:
        if 'tta_pipeline' not in cfg or 'tta_model' not in cfg:
            raise SystemExit(f'--tta: {args.config} defines no tta_pipeline '
                             '/ tta_model')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    setup_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    try:
        load_test_checkpoint(runner, args.checkpoint)
    except (CheckpointLoadError, CheckpointMismatchError,
            ReleasedCheckpointError) as e:
        raise SystemExit(f'error: {e}') from None
    set_inference_precision(runner.model, args.precision)
    runner.test()


if __name__ == '__main__':
    main()

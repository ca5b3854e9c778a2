"""Convert a released GeminiFusion checkpoint (``*.pth.tar``) to mmseg.

Usage::

    python tools/model_converters/geminifusion2mmseg.py \\
        mit-b3.pth.tar work_dirs/geminifusion_mit-b3_nyudv2.pth

The released file is read with ``torch.load(weights_only=True)`` (tensors,
builtins and numpy scalars only: a file that holds anything else is refused
without running it). The tool recognises the variant (MiT-B0..B5, Swin
tiny/small/large/large-384) and the number of classes, maps the keys (see
:mod:`geminifusion_mmseg.checkpoints.released`), checks that
they fit the matching model exactly and writes
``{'meta': ..., 'state_dict': ...}``, which ``tools/test.py CONFIG DST``
loads with the matching config. DST is written to a temporary file in its
folder and renamed when complete (a failed or interrupted write never
leaves a truncated DST); a folder, or SRC itself, is refused.

The DeLiVER branch's files (``geminifusion_b2_deliver_rgbdel.pth``: a bare
state dict with ``backbone.`` / ``decode_head.`` keys) are recognised too,
with their modality count; 25 classes -> the DeLiVER configs of that count,
9 classes -> ``configs/mfnet``.
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT)

# isort: off
from geminifusion_mmseg.checkpoints import (  # noqa: E402
    ReleasedCheckpointError, convert_released_checkpoint,
    find_matching_configs, model_config_fragment)
from geminifusion_mmseg.utils.atomic_io import OutputPathError  # noqa: E402
from geminifusion_mmseg.utils.checkpoint import (  # noqa: E402
    CheckpointLoadError)
# isort: on


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert a released GeminiFusion checkpoint '
        '(.pth.tar) to an MMSegmentation checkpoint.')
    parser.add_argument('src', help='released checkpoint (.pth.tar)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--allow-custom-arch',
        action='store_true',
        help='convert a backbone size that is not a released variant')
    parser.add_argument(
        '--config-dir',
        default=None,
        help='where to look for matching configs (default: configs/mfnet '
        'for an MFNet model, else configs/geminifusion)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ckpt, info = convert_released_checkpoint(
            args.src, args.dst, allow_custom_arch=args.allow_custom_arch)
    except (ReleasedCheckpointError, CheckpointLoadError, OutputPathError,
            OSError) as e:  # OSError: no such file, disk full
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = ckpt['meta']
    if args.config_dir is None:
        args.config_dir = osp.join(
            ROOT, 'configs',
            'mfnet' if info.dataset == 'mfnet' else 'geminifusion')
    print(f'source:      {args.src} (epoch_start='
          f'{meta["released_epoch_start"]}, best_val='
          f'{meta["released_best_val"]})')
    print(f'model:       {info.describe()}')
    print(f'backbone:    {info.backbone_type} arch={info.arch!r}' +
          (f' num_modalities={info.num_modalities}' if info.num_modalities !=
           2 else ''))
    print(f'num_classes: {info.num_classes}' +
          (f' ({info.dataset})' if info.dataset else ''))
    if info.dropped_keys:
        print(f'dropped:     {len(info.dropped_keys)} score_predictor key(s)')
    print(f'written:     {args.dst} ({len(ckpt["state_dict"])} tensors)')
    print('config fragment: ' + json.dumps(model_config_fragment(info)))
    configs = find_matching_configs(info, args.config_dir)
    if info.name is not None:
        pattern = osp.join(args.config_dir, f'geminifusion_{info.name}_*.py')
        print(f'matching configs ({pattern}):')
        for path in configs:
            print(f'  {path}')
        if not configs:
            print('  (none found)')
    if configs:
        print(f'evaluate:    python tools/test.py {configs[0]} {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

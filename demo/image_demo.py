"""Segment RGB-D pairs and save the prediction over the image with a legend.

One pair:

    python demo/image_demo.py RGB DEPTH CONFIG CHECKPOINT --out-file OUT.png

Every pair of two folders (matched by file name without extension,
searched recursively; one output image per pair, named after the pair):

    python demo/image_demo.py RGB_DIR DEPTH_DIR CONFIG CHECKPOINT \\
        --out-dir OUT_DIR

Without a depth sensor (depth missing: every pixel "no measurement"; see
docs/robustness.md for which prediction to trust then):

    python demo/image_demo.py RGB CONFIG CHECKPOINT --no-depth \\
        --out-file OUT.png     # or RGB_DIR ... --out-dir OUT_DIR

The PyTorch backend runs ``geminifusion_mmseg.apis.MultiModalSegInferencer``
(its reading, predictions and overlays; for batches, prediction PNGs and
folders of any modality use the inferencer from Python, see
docs/inference.md). The depth file is read unchanged (16-bit PNG etc.)
and encoded as the config's test pipeline says (``LoadRGBDImageFromFile``).
The image shows the fused (ensemble) prediction; ``--branch rgb`` /
``depth`` shows one modality's own prediction.

Any number of aligned modalities (RGB + X, the DeLiVER configs): name
each file, RGB included, after CONFIG CHECKPOINT:

    python demo/image_demo.py CONFIG CHECKPOINT --out-file OUT.png \
        --inputs rgb=a_rgb.png depth=a_depth.png event=a_event.png \
        lidar=a_lidar.png

With ONNX Runtime, CHECKPOINT is an exported model
(``tools/deployment/pytorch2onnx.py``; the config is read from its
metadata, so CONFIG may be ``-``):

    python demo/image_demo.py RGB DEPTH - model.onnx --backend onnxruntime \\
        --out-file OUT.png
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import cv2
from mmengine.utils import ProgressBar

from geminifusion_mmseg.apis import (MultiModalSegInferencer,
                                     inference_onnx_model, init_onnx_model)
from geminifusion_mmseg.apis.multimodal_inferencer import pair_folders
from geminifusion_mmseg.apis.precision import PRECISIONS
from geminifusion_mmseg.utils.atomic_io import atomic_output
from geminifusion_mmseg.visualization import overlay_with_legend


def add_precision_arg(parser) -> None:
    """``--precision`` (PyTorch backend; see docs/inference.md)."""
    parser.add_argument(
        '--precision',
        choices=PRECISIONS,
        default='fp32',
        help='PyTorch inference precision: fp32 (default), bf16 (autocast; '
        'on a CPU without BF16 instructions a warning and fp32) or '
        'bf16-force (bf16 even there: emulated, slow)')


def parse_args():
    parser = argparse.ArgumentParser(
        description='RGB-D segmentation demo: prediction over the image, '
        'with a class legend')
    parser.add_argument('rgb', help='RGB image file, or a folder of them')
    parser.add_argument(
        'depth',
        nargs='?',
        help='depth image file, or a folder (left out with --no-depth)')
    parser.add_argument(
        'config', help="config file ('-' with --backend onnxruntime)")
    parser.add_argument(
        'checkpoint',
        help='checkpoint file, or the .onnx file with --backend '
        'onnxruntime')
    parser.add_argument(
        '--backend',
        choices=['pytorch', 'onnxruntime'],
        default='pytorch',
        help='run the PyTorch model (default) or an exported ONNX model '
        'with ONNX Runtime')
    parser.add_argument(
        '--out-file',
        help='output image (one pair); in folder mode: the output folder')
    parser.add_argument(
        '--out-dir', help='output folder (folder mode; same as --out-file)')
    parser.add_argument(
        '--device', default='cpu', help='device, e.g. cpu or cuda:0')
    add_precision_arg(parser)
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='opacity of the painted prediction, 0..1 (default 0.5)')
    parser.add_argument(
        '--branch',
        choices=['ens', 'rgb', 'depth'],
        default='ens',
        help='prediction to show: the fused one (ens, default) or a '
        'modality branch')
    parser.add_argument(
        '--no-depth',
        action='store_true',
        help='no depth sensor: give RGB CONFIG CHECKPOINT only; the model '
        'runs with depth missing (every pixel "no measurement")')
    args = parser.parse_args()
    if args.no_depth and args.depth is not None:
        parser.error('--no-depth takes RGB CONFIG CHECKPOINT (no DEPTH); '
                     f'got an extra argument: {args.depth}')
    if not args.no_depth and args.depth is None:
        parser.error('DEPTH is missing: give RGB DEPTH CONFIG CHECKPOINT, '
                     'or RGB CONFIG CHECKPOINT --no-depth')
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be in [0, 1], got {args.opacity}')
    if args.precision != 'fp32' and args.backend == 'onnxruntime':
        parser.error(f'--precision {args.precision} is for the PyTorch '
                     'backend; the ONNX model runs as exported')
    if args.no_depth and args.backend == 'onnxruntime':
        parser.error('--no-depth runs the PyTorch model (--backend '
                     'pytorch); for ONNX Runtime feed a depth map of zeros '
                     '(the raw encoding\'s "no measurement")')
    return parser, args


def list_images(folder: str) -> List[Tuple[str, str]]:
    """(name, file) of the images under ``folder`` (recursively; name: the
    relative path without extension); SystemExit if two share a name."""
    try:
        pairs, _ = pair_folders(dict(rgb=folder))
    except ValueError as e:
        raise SystemExit(str(e))
    return [(name, files['rgb']) for name, files in pairs]


def pair_rgbd_folders(rgb_dir: str,
                      depth_dir: str) -> List[Tuple[str, str, str]]:
    """(name, rgb file, depth file) for each name in both folders (paired
    by the inferencer's :func:`pair_folders`); prints the files without a
    partner (skipped)."""
    try:
        pairs, unpaired = pair_folders(dict(rgb=rgb_dir, depth=depth_dir))
    except ValueError as e:
        raise SystemExit(str(e))
    for name, folder, what in (('rgb', rgb_dir, 'a depth'),
                               ('depth', depth_dir, 'an RGB')):
        stems = unpaired.get(name, [])
        if stems:
            shown = ', '.join(stems[:10])
            more = ' ...' if len(stems) > 10 else ''
            print(f'{len(stems)} file(s) in {folder} without {what} '
                  f'partner (skipped): {shown}{more}')
    return [(n, files['rgb'], files['depth']) for n, files in pairs]


def load_model(args):
    """The PyTorch inferencer, or (ONNX Runtime) the ONNX model."""
    if args.backend == 'onnxruntime':
        return init_onnx_model(args.checkpoint, device=args.device)
    return MultiModalSegInferencer(
        args.config,
        args.checkpoint,
        device=args.device,
        show_progress=False,
        precision=args.precision)


def render(model,
           rgb_path: str,
           depth_path: Optional[str],
           out_file: str,
           opacity: float,
           branch: str,
           sample: Optional[Dict[str, str]] = None) -> None:
    """Segment one pair (``depth_path`` None: depth missing; ``sample``:
    a K-modality input instead) and save the overlay."""
    if sample is None:
        sample = dict(rgb=rgb_path, depth=depth_path)
    key = 'pred_sem_seg' if branch == 'ens' else f'pred_sem_seg_{branch}'
    if isinstance(model, MultiModalSegInferencer):
        result = model(sample, return_datasamples=True)
        if key not in result:
            raise SystemExit(f'the model gives no {key}')
        shown = model.visualize([sample], [result],
                                return_vis=True,
                                opacity=opacity,
                                branch=branch)[0]
    else:  # ONNX Runtime
        result = inference_onnx_model(model, rgb_path, depth_path)
        if key not in result:
            raise SystemExit(f'the model gives no {key} (export the ONNX '
                             'model with --branches)')
        label = result.get(key).data[0].cpu().numpy()
        # as the data sets read it: EXIF orientation ignored, BGR -> RGB
        image = cv2.imread(rgb_path,
                           cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise OSError(f'cannot read {rgb_path}')
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        shown = overlay_with_legend(image, label,
                                    model.dataset_meta['classes'],
                                    model.dataset_meta['palette'], opacity)
    with atomic_output(out_file, what='--out-file') as tmp:
        if not cv2.imwrite(tmp, cv2.cvtColor(shown, cv2.COLOR_RGB2BGR)):
            raise OSError(f'could not write {out_file}')


def parse_modality_args():
    """``CONFIG CHECKPOINT --inputs NAME=PATH ...`` (K modalities)."""
    parser = argparse.ArgumentParser(
        description='Multi-modal segmentation demo: CONFIG CHECKPOINT '
        '--inputs rgb=RGB NAME=PATH ...')
    parser.add_argument(
        '--inputs',
        nargs='+',
        required=True,
        metavar='NAME=PATH',
        help='one image file per modality of the config, rgb included')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', required=True, help='output image')
    parser.add_argument('--device', default='cpu')
    add_precision_arg(parser)
    parser.add_argument('--opacity', type=float, default=0.5)
    parser.add_argument(
        '--branch',
        default='ens',
        help="prediction to show: 'ens' (fused, default) or a stream name "
        "of the model (e.g. 'rgb', 'fused')")
    args = parser.parse_args()
    inputs = {}
    for item in args.inputs:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            parser.error(f'--inputs takes NAME=PATH items, got {item!r}')
        if name in inputs:
            parser.error(f'--inputs names {name!r} twice')
        if not osp.isfile(path):
            parser.error(f'not found: {path} ({name})')
        inputs[name] = path
    if 'rgb' not in inputs:
        parser.error('--inputs needs rgb=PATH (the image the prediction '
                     'is drawn on)')
    for path in (args.config, args.checkpoint):
        if not osp.exists(path):
            parser.error(f'not found: {path}')
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be in [0, 1], got {args.opacity}')
    return args, inputs


def main_modalities():
    args, inputs = parse_modality_args()
    model = MultiModalSegInferencer(
        args.config,
        args.checkpoint,
        device=args.device,
        show_progress=False,
        precision=args.precision)
    render(model, inputs['rgb'], None, args.out_file, args.opacity,
           args.branch, inputs)
    print(f'saved {args.out_file}')


def main():
    if '--inputs' in sys.argv[1:]:
        return main_modalities()
    parser, args = parse_args()
    rgb_dir = osp.isdir(args.rgb)
    if not args.no_depth and rgb_dir != osp.isdir(args.depth):
        parser.error('RGB and DEPTH must both be files or both be folders')
    paths = [args.rgb, args.depth, args.checkpoint]
    if not (args.backend == 'onnxruntime' and args.config == '-'):
        paths.append(args.config)
    for path in paths:
        if path is not None and not osp.exists(path):
            parser.error(f'not found: {path}')
    if args.no_depth:
        print('--no-depth: running with depth missing (every pixel "no '
              f'measurement"); showing the {args.branch} prediction')

    if not rgb_dir:
        out_file = args.out_file or args.out_dir
        if out_file is None:
            parser.error('--out-file is required')
        if osp.isdir(out_file):
            out_file = osp.join(
                out_file,
                osp.splitext(osp.basename(args.rgb))[0] + '.png')
        model = load_model(args)
        render(model, args.rgb, args.depth, out_file, args.opacity,
               args.branch)
        print(f'saved {out_file}')
        return

    out_dir = args.out_dir or args.out_file
    if out_dir is None:
        parser.error('folder mode needs --out-dir (or --out-file) naming '
                     'the output folder')
    if osp.isfile(out_dir):
        parser.error(f'--out-dir {out_dir} is a file, not a folder')
    if args.no_depth:
        pairs = [(n, rgb, None) for n, rgb in list_images(args.rgb)]
    else:
        pairs = pair_rgbd_folders(args.rgb, args.depth)
    if not pairs and args.no_depth:
        raise SystemExit(f'no images in {args.rgb}')
    if not pairs:
        raise SystemExit(f'no RGB-D pairs: no file name occurs in both '
                         f'{args.rgb} and {args.depth}')
    print(f'{len(pairs)} ' +
          ('RGB image(s)' if args.no_depth else 'RGB-D pair(s)'))
    model = load_model(args)
    failed = []
    progress = ProgressBar(len(pairs))
    for name, rgb_path, depth_path in pairs:
        try:
            render(model, rgb_path, depth_path,
                   osp.join(out_dir, name + '.png'), args.opacity, args.branch)
        except (ValueError, OSError) as e:
            failed.append(f'{name}: {e}')
        progress.update()
    sys.stdout.write('\n')
    print(f'saved {len(pairs) - len(failed)} image(s) to {out_dir}')
    if failed:
        print(f'{len(failed)} pair(s) failed:', file=sys.stderr)
        for line in failed:
            print(f'  {line}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()

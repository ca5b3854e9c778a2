"""Export a GeminiFusion segmentor to ONNX (one graph: frames in, logits and
class ids out) and optionally check ONNX Runtime against PyTorch.

    python tools/deployment/pytorch2onnx.py CONFIG CKPT --out model.onnx \\
        [--shape H W] [--dynamic-shape] [--opset N] [--fp16] [--verify] \\
        [--input-dtype MODALITY=DTYPE ...]

Graph inputs (default): one per modality of the model, named after it.
RGB-D: ``rgb`` uint8 (B, H, W, 3) in RGB order, ``depth`` as stored by the
sensor, (B, H, W) (``--depth-dtype``, default uint16; (B, H, W, 3) uint8
for the 'hha' encoding). K-modality configs (``LoadMultiModalImageFromFile``,
K = 2..4, e.g. DeLiVER ``rgb``, ``depth``, ``event``, ``lidar``): each
further modality as stored, (B, H, W) for a metric depth encoding, else
(B, H, W, 3); uint8 unless ``--input-dtype event=uint16`` (metric depth:
uint16). The config's encodings and normalisation run inside the graph.
``--no-preprocess``: normalised float32 (B, 3, H, W) tensors instead.
Outputs: ``logits`` (B, K, H, W) float32 of the fused prediction, ``pred``
(B, H, W) int64; ``--branches`` adds ``logits_<branch>`` per stream
(``logits_rgb`` and ``logits_depth`` for RGB-D, ``logits_fused`` beside
``logits_rgb`` for K > 2).
The file is written to a temporary file next to ``--out`` and renamed
once the export and ``onnx.checker`` have passed. See docs/deployment.md.
"""
import argparse
import logging
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a GeminiFusion model to ONNX (whole-image '
        'inference; pre-processing in the graph)')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='checkpoint file (omit with --random-weights)')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        default=[480, 640],
        help='input height and width (static graph), or the example size '
        'of a dynamic one (default 480 640)')
    parser.add_argument(
        '--batch', type=int, default=1, help='batch of a static graph')
    parser.add_argument(
        '--dynamic-shape',
        action='store_true',
        help='dynamic batch, height and width')
    parser.add_argument(
        '--opset', type=int, default=18, help='ONNX opset (default 18)')
    parser.add_argument(
        '--fp16',
        action='store_true',
        help='network in float16 (pre-processing and outputs float32); '
        'verified with a looser tolerance, see docs/deployment.md')
    parser.add_argument(
        '--no-preprocess',
        dest='preprocess',
        action='store_false',
        help='inputs are the normalised float tensors (B, 3, H, W)')
    parser.add_argument(
        '--depth-dtype',
        choices=['uint16', 'uint8', 'float32'],
        default=None,
        help="dtype of the depth input (default: uint8 for 'hha', else "
        'uint16)')
    parser.add_argument(
        '--input-dtype',
        nargs='+',
        default=None,
        metavar='MODALITY=DTYPE',
        help='dtype of a modality input (uint8, uint16, float32), e.g. '
        'event=uint8 lidar=uint16 (default: uint16 for metric depth '
        'encodings, else uint8)')
    parser.add_argument(
        '--branches',
        action='store_true',
        help='also output each modality\'s logits')
    parser.add_argument(
        '--no-optimize',
        dest='optimize',
        action='store_false',
        help="skip onnxscript's graph optimiser")
    parser.add_argument(
        '--ort-fusions',
        action='store_true',
        help='fuse into ONNX Runtime contrib ops (Gelu, MultiHeadAttention'
        '): faster on ONNX Runtime, but the file then runs on ONNX Runtime '
        'only')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='run ONNX Runtime and PyTorch on the same inputs; fail beyond '
        '1e-4 relative error or below 99.9%% argmax agreement')
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='export without a checkpoint (for testing the export)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=None,
        metavar='KEY=VALUE',
        help='override config settings (mmengine syntax)')
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random_weights:
        parser.error('give a CHECKPOINT or --random-weights')
    args.input_dtypes = {}
    for item in args.input_dtype or []:
        name, sep, dtype = item.partition('=')
        if not sep or dtype not in ('uint8', 'uint16', 'float32'):
            parser.error(f'--input-dtype {item}: give MODALITY=DTYPE with '
                         'DTYPE one of uint8, uint16, float32')
        args.input_dtypes[name] = dtype
    if min(args.shape) < 32:
        parser.error(f'--shape {args.shape}: each side must be >= 32')
    return args


def _cfg_options(items):
    if not items:
        return None
    from mmengine.config import DictAction
    ns = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='opts')(None, ns, items)
    return ns.opts


def _check_mode(cfg_path: str, options) -> None:
    """Refuse what the export does not support, saying what is."""
    from mmengine.config import Config
    cfg = Config.fromfile(cfg_path)
    if options:
        cfg.merge_from_dict(options)
    mode = cfg.model.get('test_cfg', {}).get('mode', 'whole')
    if mode != 'whole':
        raise SystemExit(
            f"{cfg_path}: model.test_cfg.mode={mode!r} (sliding window) "
            'cannot be exported: only whole-image inference is. Pass '
            '--cfg-options model.test_cfg.mode=whole and feed frames at '
            'the size the model should see. Test-time augmentation '
            '(--tta) is not exported either: run the graph per scale/flip '
            'and average on the host.')


def main(argv=None) -> int:
    args = parse_args(argv)
    import geminifusion_mmseg  # noqa: F401 (registries, mmcv fallbacks)
    from geminifusion_mmseg.apis import init_model
    from geminifusion_mmseg.deployment import export_onnx, verify_onnx
    from geminifusion_mmseg.utils.atomic_io import (OutputPathError,
                                                    check_output_path)

    if not osp.isfile(args.config):
        raise SystemExit(f'config {args.config} does not exist')
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    try:  # before the (slow) export: not a folder, not an input
        for src in (args.checkpoint, args.config):
            check_output_path(args.out, src, '--out')
    except OutputPathError as e:
        raise SystemExit(str(e)) from None
    options = _cfg_options(args.cfg_options)
    _check_mode(args.config, options)
    model = init_model(
        args.config, args.checkpoint, device='cpu', cfg_options=options)
    info = export_onnx(
        model,
        args.out,
        shape=tuple(args.shape),
        dynamic=args.dynamic_shape,
        batch=args.batch,
        opset=args.opset,
        fp16=args.fp16,
        preprocess=args.preprocess,
        branches=args.branches,
        depth_dtype=args.depth_dtype,
        input_dtypes=args.input_dtypes or None,
        optimize=args.optimize,
        ort_fusions=args.ort_fusions)
    print(f'saved {info.path} ({info.file_size / 2**20:.1f} MiB), inputs '
          f'{info.input_names}, outputs {info.output_names}, '
          f"{'dynamic' if info.dynamic else 'static'} shape")
    if args.verify:
        # verify_onnx logs one line per checked size
        report = verify_onnx(info.path, model, raise_on_failure=False)
        if not report.passed:
            print(f'parity check FAILED for {info.path}', file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())

"""Convert the official SUN RGB-D download to the DFormer layout.

    python tools/dataset_converters/sunrgbd.py SUNRGBD SUNRGBDtoolbox OUT \\
        [--depth depth_bfx|depth] [--depth-format minmax8|mm16] \\
        [--intrinsics]

SUNRGBD is the folder extracted from ``SUNRGBD.zip`` (kv1/, kv2/,
realsense/, xtion/), SUNRGBDtoolbox the one from ``SUNRGBDtoolbox.zip``
(Metadata/SUNRGBDMeta.mat, Metadata/SUNRGBD2Dseg.mat,
traintestSUNRGBD/allsplit.mat; reading SUNRGBD2Dseg.mat needs h5py:
``pip install -e ".[converters]"``). Writes

    OUT/RGB/train_0.jpg ...     the JPEGs, copied
    OUT/Depth/train_0.png ...   8-bit, each image scaled to its own range
                                (--depth-format mm16: 16-bit millimetres)
    OUT/labels/train_0.png ...  0 = unlabelled, 1..37
    OUT/train.txt, test.txt     5285 / 5050 lines
                                RGB/X.jpg<TAB>labels/X.png<TAB>Depth/X.png

numbered in the order of allsplit.mat. ``--intrinsics`` also copies each
camera matrix to ``OUT/Intrinsics/<name>.txt`` (for depth2hha.py). OUT must
be new or empty (or a previous output of this tool).

Exit status: 0 when the dataset was written, 1 otherwise.
"""
import argparse
import os.path as osp
import sys

ROOT_DIR = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT_DIR not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT_DIR)

from geminifusion_mmseg.datasets.converters import (  # noqa: E402
    ConverterError, convert_sunrgbd)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the official SUN RGB-D download to the '
        'DFormer layout read by SUNRGBDDataset.')
    parser.add_argument('sunrgbd', help='the extracted SUNRGBD folder')
    parser.add_argument('toolbox', help='the extracted SUNRGBDtoolbox folder')
    parser.add_argument('out', help='output folder (new or empty)')
    parser.add_argument(
        '--depth',
        choices=['depth_bfx', 'depth'],
        default='depth_bfx',
        help='in-painted depth (default) or the raw sensor depth')
    parser.add_argument(
        '--depth-format',
        choices=['minmax8', 'mm16'],
        default='minmax8',
        help='minmax8: 8-bit, each image scaled to its own min..max (the '
        'DFormer copy, default); mm16: 16-bit millimetres (metric)')
    parser.add_argument(
        '--intrinsics',
        action='store_true',
        help='also copy each intrinsics.txt to OUT/Intrinsics/<name>.txt')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        convert_sunrgbd(
            args.sunrgbd,
            args.toolbox,
            args.out,
            depth_folder=args.depth,
            depth_format=args.depth_format,
            copy_intrinsics=args.intrinsics)
    except ConverterError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

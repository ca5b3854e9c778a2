"""Encode metric depth images as HHA (Gupta et al., ECCV 2014).

    python tools/dataset_converters/depth2hha.py DEPTH OUT \\
        [--intrinsics nyu|nyu-border-cropped|FX,FY,CX,CY|K.txt] \\
        [--intrinsics-dir DIR] [--depth-unit 0.001] [--raw-depth DIR] \\
        [--rotations camera_rotations_NYU.txt]

DEPTH is a folder of depth PNGs (all ``*.png``, in name order) or a list
file of them. Each becomes ``OUT/<name>.png``: 8-bit, channels disparity,
height above ground, angle with gravity, the format
``LoadRGBDImageFromFile(depth_encoding='hha')`` reads. Gravity is
estimated from the surface normals unless ``--rotations`` gives one 3x3
camera-to-gravity rotation per image (in image order, or by the frame
number in the file name when the file has more, e.g. the 1449 matrices of
``camera_rotations_NYU.txt`` for ``000123.png``). The depth must be metric
(``--depth-unit`` metres per stored unit: 0.001 for millimetre PNGs), not
8-bit scaled copies.

Exit status: 0 when the images were written, 1 otherwise.
"""
import argparse
import os.path as osp
import sys

ROOT_DIR = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT_DIR not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT_DIR)

from geminifusion_mmseg.datasets.converters import (  # noqa: E402
    ConverterError, convert_depth_to_hha)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the HHA encoding of metric depth images.')
    parser.add_argument('depth', help='folder of depth PNGs, or a list file')
    parser.add_argument('out', help='output folder (new or empty)')
    parser.add_argument(
        '--intrinsics',
        default='nyu',
        help='camera of every image: nyu (NYU Kinect, 480x640; default), '
        'nyu-border-cropped (468x625), "fx,fy,cx,cy" (principal point '
        '1-based, as MATLAB calibrations give it) or a 3x3 matrix file')
    parser.add_argument(
        '--intrinsics-dir',
        help='folder of <name>.txt camera matrices, one per image (e.g. '
        'the Intrinsics/ of sunrgbd.py --intrinsics)')
    parser.add_argument(
        '--depth-unit',
        type=float,
        default=1e-3,
        help='metres per stored depth unit (default: 0.001, millimetres)')
    parser.add_argument(
        '--raw-depth',
        help='folder of raw depth images with the same names; their zeros '
        'mark missing pixels (default: the zeros of DEPTH)')
    parser.add_argument(
        '--rotations',
        help='file of 3x3 camera-to-gravity rotations, e.g. '
        'camera_rotations_NYU.txt (default: estimate gravity)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        convert_depth_to_hha(
            args.depth,
            args.out,
            intrinsics=args.intrinsics,
            depth_unit=args.depth_unit,
            intrinsics_dir=args.intrinsics_dir,
            raw_depth_dir=args.raw_depth,
            rotations=args.rotations)
    except ConverterError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

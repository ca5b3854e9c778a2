"""Convert the official NYU Depth V2 labeled set to the TokenFusion layout.

    python tools/dataset_converters/nyudv2.py nyu_depth_v2_labeled.mat OUT \\
        [--crop-border] [--border T B L R] [--depth-source depths|rawDepths] \\
        [--frames 1-10,20]

Reads the official ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3; needs h5py:
``pip install -e ".[converters]"``) frame by frame and writes

    OUT/rgb/000001.png ...     RGB, 8-bit
    OUT/depth/000001.png ...   depth, 16-bit millimetres (always 480x640)
    OUT/masks/000001.png ...   40 classes 0..39, 255 = unlabelled
    OUT/train.txt              795 lines, rgb/X.png<TAB>masks/X.png<TAB>
                               depth/X.png
    OUT/val.txt                654 lines (the official test split)

with the standard 894 -> 40 class mapping and the official split (both
built in). ``--crop-border`` removes the white border from RGB and masks
as the released copy did (468x625); depth stays at the full frame, as in
that copy. OUT must be new or empty (or a previous output of this tool).

Exit status: 0 when the dataset was written, 1 otherwise.
"""
import argparse
import os.path as osp
import sys

ROOT_DIR = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT_DIR not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT_DIR)

from geminifusion_mmseg.datasets.converters import (  # noqa: E402
    ConverterError, convert_nyudv2, parse_frames)
from geminifusion_mmseg.datasets.nyudv2_meta import \
    RELEASED_BORDER  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert nyu_depth_v2_labeled.mat to the TokenFusion '
        'layout read by NYUDv2Dataset.')
    parser.add_argument('mat', help='the official nyu_depth_v2_labeled.mat')
    parser.add_argument('out', help='output folder (new or empty)')
    parser.add_argument(
        '--crop-border',
        action='store_true',
        help='crop the white border from RGB and masks as the released '
        'copy did (468x625); depth keeps the full 480x640 frame')
    parser.add_argument(
        '--border',
        type=int,
        nargs=4,
        metavar=('TOP', 'BOTTOM', 'LEFT', 'RIGHT'),
        default=list(RELEASED_BORDER),
        help='pixels cropped by --crop-border (default: '
        f'{" ".join(map(str, RELEASED_BORDER))}, the released copy)')
    parser.add_argument(
        '--depth-source',
        choices=['depths', 'rawDepths'],
        default='depths',
        help='in-painted depth (default) or the raw Kinect depth')
    parser.add_argument(
        '--frames',
        help='convert only these 1-based frames, e.g. "1-10,20" (the '
        'lists then hold only them)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        frames = None if args.frames is None else parse_frames(args.frames)
        convert_nyudv2(
            args.mat,
            args.out,
            crop=args.crop_border,
            border=args.border,
            depth_source=args.depth_source,
            frames=frames)
    except ConverterError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Write train/val list files for your own RGB-D folders.

    python tools/dataset_converters/make_rgbd_lists.py ROOT \\
        [--rgb DIR --depth DIR --label DIR] \\
        [--val-ratio R | --val-list FILE] [--seed S] [--out-dir DIR] \\
        [--strict] [--overwrite]

Pairs the files of ROOT/rgb, ROOT/depth and ROOT/label by stem (the path
inside the folder without the extension, so ``rgb/0001.jpg``,
``depth/0001.png`` and ``label/0001.png`` are one sample; sub-folders are
allowed), prints every file that has no partner, refuses to write lists
when a folder holds the same stem twice (``0001.png`` and ``0001.jpg``)
or the val list names a sample twice, and writes ``train.txt`` and
``val.txt`` with lines ``rgb/0001.jpg<TAB>label/0001.png<TAB>depth/0001.png``
(paths relative to ROOT), the layout ``RGBDDataset`` reads with
``data_root=ROOT, ann_file='train.txt'``. Each list is written to a
temporary file and renamed when complete; existing lists are replaced only
with ``--overwrite``.

Exit status: 0 when the lists were written, 1 otherwise.
"""
import argparse
import os.path as osp
import sys

ROOT_DIR = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT_DIR not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT_DIR)

from geminifusion_mmseg.datasets.list_maker import (  # noqa: E402
    ListMakerError, make_lists)
from geminifusion_mmseg.utils.atomic_io import OutputPathError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Pair RGB, depth and label files by name and write '
        'train/val list files for RGBDDataset.')
    parser.add_argument('root', help='dataset root (data_root)')
    parser.add_argument(
        '--rgb', default='rgb', help='RGB folder in ROOT (default: rgb)')
    parser.add_argument(
        '--depth',
        default='depth',
        help='depth folder in ROOT (default: depth)')
    parser.add_argument(
        '--label',
        default='label',
        help='label folder in ROOT (default: label)')
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        '--val-ratio',
        type=float,
        default=0.1,
        help='random fraction of the samples for val.txt (default: 0.1; '
        '0 writes train.txt only)')
    split.add_argument(
        '--val-list',
        help='file naming the validation samples, one per line (stem, '
        'file name, or path in the RGB folder; a 3-column list works too)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the random split (default: 0)')
    parser.add_argument(
        '--out-dir', help='where to write the lists (default: ROOT)')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='refuse to write lists when any file is unpaired')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing train.txt / val.txt')
    return parser.parse_args(argv)


def _report_unpaired(pairing) -> None:
    if not pairing.unpaired:
        return
    print(f'{pairing.num_unpaired} unpaired file(s) (not listed):')
    for kind, paths in pairing.unpaired.items():
        for path in paths:
            print(f'  {kind}: {path}  (no ' +
                  ', '.join(pairing.missing[path]) + ' file with this name)')


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = make_lists(
            args.root,
            rgb=args.rgb,
            depth=args.depth,
            label=args.label,
            val_ratio=args.val_ratio,
            val_list=args.val_list,
            seed=args.seed,
            out_dir=args.out_dir,
            allow_unpaired=not args.strict,
            overwrite=args.overwrite)
    except ListMakerError as e:
        # report the unpaired files too, so one run shows everything
        from geminifusion_mmseg.datasets.list_maker import pair_by_stem
        try:
            _report_unpaired(
                pair_by_stem(args.root, args.rgb, args.depth, args.label))
        except FileNotFoundError:
            pass
        print(f'error: {e}', file=sys.stderr)
        return 1
    except (FileNotFoundError, OutputPathError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    pairing = result['pairing']
    _report_unpaired(pairing)
    for kind, n in pairing.skipped.items():
        if n:
            print(f'note: skipped {n} non-image file(s) in the {kind} folder')
    split = (f'val list {args.val_list}' if args.val_list else
             f'val ratio {args.val_ratio}, seed {args.seed}')
    print(f'{len(pairing.samples)} complete samples: '
          f'{len(result["train"])} train, {len(result["val"])} val ({split})')
    for path in result['written']:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

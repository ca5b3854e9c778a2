"""Train a config with several seeds and report the spread of its scores.

    python tools/analysis_tools/seed_sweep.py CONFIG [CONFIG ...] \\
        [--seeds 0 1 2] [--work-dir work_dirs/seed_sweep] \\
        [--cfg-options k=v ...] [--out results.json] [--report-only]

For each config and seed, ``tools/train.py CONFIG --work-dir
WORK_DIR/<config name>/seed<S> --cfg-options randomness.seed=S`` runs in
its own process, one at a time, with ``--resume`` (a seed whose work dir
already holds the final validation is not trained again, and an
interrupted one continues from its last checkpoint). Then, per config,
the final validation of each seed is printed as a markdown table: mIoU
of the fused prediction, each branch's mIoU and the per-class IoU, with
the mean and the range (min..max) over the seeds. ``--out`` writes the
same numbers as JSON.

Scores come from each run's logs: ``vis_data/scalars.json`` (mIoU, branch
mIoUs) and the last per-class table of the log file.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train configs with several seeds; mean and range of '
        'the final mIoU and per-class IoU')
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help='seeds (randomness.seed); default 0 1 2')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/seed_sweep',
        help='runs go to WORK_DIR/<config name>/seed<S>')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='passed to every tools/train.py run')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='do not train; report the runs found in WORK_DIR')
    return parser.parse_args(argv)


def run_dir(work_dir: str, config: str, seed: int) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, name, f'seed{seed}')


def final_scores(path: str) -> Optional[dict]:
    """The last validation of a run's work dir, or None if it has none.

    Returns:
        dict: ``step``, ``mIoU``, ``branches`` ({name: mIoU}) and
        ``classes`` ({class: IoU}, from the last per-class table).
    """
    last = None
    for scalars in sorted(
            glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json'))):
        with open(scalars) as f:
            for line in f:
                rec = json.loads(line)
                if 'mIoU' in rec:
                    last = rec
    if last is None:
        return None
    table = None
    for log in sorted(glob.glob(osp.join(path, '*', '*.log'))):
        with open(log) as f:
            text = f.read()
        found = _per_class_tables(text)
        if found:
            table = found[-1]
    return dict(
        step=last.get('step'),
        mIoU=last['mIoU'],
        branches={
            k[:-len('.mIoU')]: v
            for k, v in last.items() if k.endswith('.mIoU')
        },
        classes=table or {})


def _per_class_tables(text: str) -> List[Dict[str, float]]:
    """Every mmseg per-class table (``| Class | IoU | Acc |``) in a log."""
    tables = []
    for block in text.split('per class results:')[1:]:
        rows = {}
        for line in block.splitlines()[3:]:
            cells = [c.strip() for c in line.strip().split('|')]
            if line.strip().startswith('+') and rows:
                break
            if len(cells) >= 4 and cells[1] and cells[1] != 'Class':
                try:
                    rows[cells[1]] = float(cells[2])
                except ValueError:  # 'nan'
                    rows[cells[1]] = float('nan')
        tables.append(rows)
    return tables


def _max_iters(config: str, options: List[str]) -> Optional[int]:
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config)
    if options:
        ns = argparse.Namespace()
        DictAction(
            option_strings=['--cfg-options'], dest='o')(None, ns, options)
        cfg.merge_from_dict(ns.o)
    return cfg.get('train_cfg', {}).get('max_iters')


def train(config: str, seed: int, path: str, options: List[str]) -> None:
    # --resume: an interrupted run continues from its last checkpoint
    cmd = [
        sys.executable, TRAIN, config, '--work-dir', path, '--resume',
        '--cfg-options', f'randomness.seed={seed}', *options
    ]
    print(' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=os.getcwd())


def _fmt(values: List[float]) -> List[str]:
    if not values:
        return ['', '']
    mean = sum(values) / len(values)
    return [f'{mean:.2f}', f'{min(values):.2f}..{max(values):.2f}']


def report(config: str, seeds: List[int], scores: Dict[int, dict]) -> str:
    """A markdown table: one row per seed, then mean and range."""
    done = [s for s in seeds if scores.get(s)]
    if not done:
        return f'{config}: no finished run\n'
    branches = list(scores[done[0]]['branches'])
    classes = list(scores[done[0]]['classes'])
    head = ['seed', 'step', 'mIoU'] + [f'{b} mIoU' for b in branches] + classes
    rows = []
    for s in done:
        sc = scores[s]
        rows.append(
            [str(s), str(sc['step']), f"{sc['mIoU']:.2f}"] +
            [f"{sc['branches'].get(b, float('nan')):.2f}" for b in branches] +
            [f"{sc['classes'].get(c, float('nan')):.1f}" for c in classes])
    cols = [[scores[s]['mIoU'] for s in done]
            ] + [[scores[s]['branches'][b] for s in done]
                 for b in branches] + [[scores[s]['classes'][c] for s in done]
                                       for c in classes]
    stats = [_fmt(c) for c in cols]
    rows.append(['mean', ''] + [m for m, _ in stats])
    rows.append(['range', ''] + [r for _, r in stats])
    lines = [
        f'{config} ({len(done)} of {len(seeds)} seeds)', '',
        '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)
    ]
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    args = parse_args(argv)
    results = {}
    for config in args.configs:
        if not osp.isfile(config):
            raise SystemExit(f'config file not found: {config}')
        end = None if args.report_only else _max_iters(config,
                                                       args.cfg_options)
        scores = {}
        for seed in args.seeds:
            path = run_dir(args.work_dir, config, seed)
            found = final_scores(path)
            if not args.report_only and (found is None or end is not None
                                         and found['step'] != end):
                train(config, seed, path, args.cfg_options)
                found = final_scores(path)
            scores[seed] = found
        results[config] = {str(s): v for s, v in scores.items()}
        print(report(config, args.seeds, scores), flush=True)
    if args.out:
        from geminifusion_mmseg.utils.atomic_io import atomic_write_text
        atomic_write_text(json.dumps(results, indent=1), args.out)
    return 0


if __name__ == '__main__':
    if ROOT not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, ROOT)
    sys.exit(main())

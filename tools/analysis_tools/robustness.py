"""Robustness to sensor failures: mIoU on the test set clean and under each
corruption x severity (fused prediction and each branch).

    python tools/analysis_tools/robustness.py CONFIG CHECKPOINT \\
        [--corruptions depth_missing depth_holes ...] [--severities 1 3 5] \\
        [--out-dir DIR] [--depth-unit 0.001] [--seed 0] \\
        [--cfg-options k=v ...] [--launcher pytorch]

    # several processes (GPUs, or CPU with gloo), like tools/dist_test.sh:
    python -m torch.distributed.run --nproc_per_node 2 \\
        tools/analysis_tools/robustness.py CONFIG CHECKPOINT \\
        --launcher pytorch

The corruption (``geminifusion_mmseg/datasets/transforms/corruptions.py``)
is inserted right after the loader (``LoadRGBDImageFromFile``, or
``LoadMultiModalImageFromFile`` of a K-modality config) in the config's
test pipeline (single scale, exactly as ``tools/test.py`` evaluates), with
the loader's encoding of the corrupted modality. Besides the names of
``CORRUPTIONS``, a K-modality config takes ``<modality>_missing`` for any of
its modalities (``thermal_missing``, ``event_missing``, ...) and
``<modality>_holes`` / ``_noise`` / ``_quantisation`` /
``_misregistration`` for a modality its loader reads with a depth encoding
(e.g. ``lidar_holes`` with ``encodings=dict(lidar='raw')``). Corruptions
are seeded per sample, so every run, worker count and process count sees
the same corrupted images.

Writes ``robustness.json`` (every number), ``robustness.md`` (the table)
and ``robustness.png`` (mIoU vs severity per corruption; needs matplotlib)
into ``--out-dir`` (default ``work_dirs/robustness/CONFIG_NAME``), and
prints the table: mIoU of the fused prediction and of every branch the
evaluator reports (``<branch>.mIoU``: rgb / depth, or e.g. rgb / fused of a
K-modality model), with the change relative to clean in brackets.
"""
import argparse
import copy
import json
import numbers
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from mmseg.registry import TRANSFORMS

import geminifusion_mmseg  # noqa: F401  (registers modules)
from geminifusion_mmseg.datasets.transforms.corruptions import (
    CORRUPTIONS, MODALITY_PATTERNS, SEVERITIES, ModalityMissing,
    build_corruption, parse_corruption)
from geminifusion_mmseg.datasets.transforms.loading import DEPTH_ENCODINGS
from geminifusion_mmseg.utils.atomic_io import atomic_write_text
from geminifusion_mmseg.utils.launch import setup_launcher
from geminifusion_mmseg.utils.pipeline_cfg import transform_name

LOADER = 'LoadRGBDImageFromFile'
MM_LOADER = 'LoadMultiModalImageFromFile'
LOADERS = (LOADER, MM_LOADER)
#: Conditions: (corruption name or 'clean', severity or None).
Condition = Tuple[str, Optional[int]]


def corruption_name(name: str) -> str:
    """argparse type of ``--corruptions``: a name of ``CORRUPTIONS`` or
    ``<modality>_<kind>``."""
    try:
        parse_corruption(name)
    except KeyError:
        raise argparse.ArgumentTypeError(
            f'invalid choice: {name!r} (choose from '
            f'{", ".join(CORRUPTIONS)}, or {", ".join(MODALITY_PATTERNS)} '
            'for a modality of the config)')
    return name


def parse_args():
    parser = argparse.ArgumentParser(
        description='mIoU under sensor failures (corruption x severity)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--corruptions',
        nargs='+',
        default=list(CORRUPTIONS),
        type=corruption_name,
        metavar='NAME',
        help='corruptions to run (default: all of ' + ', '.join(CORRUPTIONS) +
        '); a K-modality config also takes ' + ', '.join(MODALITY_PATTERNS) +
        " for its modalities, e.g. thermal_missing, lidar_holes")
    parser.add_argument(
        '--severities',
        nargs='+',
        type=int,
        default=list(SEVERITIES),
        choices=list(SEVERITIES),
        metavar='S',
        help='severities 1..5 (default: all); depth_missing and '
        'rgb_missing have one level and run once')
    parser.add_argument(
        '--out-dir',
        help='where the JSON, table and plot go (default: '
        'work_dirs/robustness/CONFIG_NAME)')
    parser.add_argument(
        '--depth-unit',
        type=float,
        default=1e-3,
        help='metres per stored depth unit, for the corruptions defined '
        'in metres (noise, quantisation, far holes); default 0.001 '
        '(millimetres: NYUDv2, the quickstart data)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the corruptions (default 0)')
    parser.add_argument(
        '--no-plot', action='store_true', help='do not write the PNG plot')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='keep the runner\'s INFO log (per-class tables of every run)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def conditions_of(corruptions: List[str],
                  severities: List[int]) -> List[Condition]:
    """Clean first, then each corruption at each severity (once for the
    one-level corruptions)."""
    out: List[Condition] = [('clean', None)]
    for name in corruptions:
        if parse_corruption(name)[0].LEVELS is None:
            out.append((name, None))
        else:
            out.extend((name, s) for s in sorted(set(severities)))
    return out


def corrupted_pipeline(
        pipeline: List[dict],
        corruption: str,
        severity: Optional[int],
        seed: int = 0,
        depth_unit: float = 1e-3,
        source: str = 'the test pipeline',
        modalities: Optional[Sequence[str]] = None) -> List[dict]:
    """A copy of ``pipeline`` with the corruption right after its loader
    (``LoadRGBDImageFromFile`` or ``LoadMultiModalImageFromFile``), with the
    loader's encoding of the corrupted modality.

    Args:
        pipeline (list[dict]): A test pipeline (transform configs).
        corruption (str): A name of ``CORRUPTIONS``, ``<modality>_<kind>``
            (see :func:`parse_corruption`), or 'clean' (copy only).
        severity (int, optional): 1..5; None for one-level corruptions.
        seed (int): Seed of the corruption.
        depth_unit (float): Metres per stored depth unit.
        source (str): Names the pipeline in errors.
        modalities (Sequence[str], optional): The config's modalities (the
            test dataset's), for a K-modality loader without its own list;
            None: take the loader's, else do not check the name.

    Returns:
        list[dict]: The new pipeline.

    Raises:
        ValueError: No loader, a modality the config does not have, or a
            depth corruption on a modality not read with a depth encoding.
    """
    steps = [copy.deepcopy(dict(t)) for t in pipeline]
    names = [transform_name(t) for t in steps]
    found = [n for n in names if n in LOADERS]
    if not found:
        raise ValueError(f'{source} has no {LOADER} or {MM_LOADER} (got '
                         f'{names}); the robustness tool needs an RGB-D or '
                         'K-modality test pipeline.')
    if corruption == 'clean':
        return steps
    i = names.index(found[0])
    loader = steps[i]
    cls, modality = parse_corruption(corruption)
    modality = modality or cls.MODALITY
    if found[0] == LOADER:
        known = ('rgb', 'depth')
        enc = dict(
            encoding=loader.get('depth_encoding', 'raw'),
            scale=loader.get('depth_scale', 1.0),
            range=loader.get('depth_range', None))
    else:
        known = loader.get('modalities') or modalities
        enc = TRANSFORMS.build(loader).encoding_of(modality)
    if known is not None and modality not in known:
        raise ValueError(
            f'{corruption}: the config has no modality {modality!r}; its '
            f'modalities are {list(known)} ({source}).')
    if cls.MODALITY == 'depth' and enc['encoding'] not in DEPTH_ENCODINGS:
        if cls.LEVELS is None:  # depth_missing: any encoding
            cls = ModalityMissing
        else:
            raise ValueError(
                f'{corruption}: the loader of {source} reads {modality!r} '
                f"with the encoding {enc['encoding']!r}, not with a depth "
                f'encoding {DEPTH_ENCODINGS}, so {cls.NAME} does not apply '
                f"(only {modality}_missing does). Give the loader "
                f"encodings=dict({modality}='raw') (or 'scale' / 'clip') if "
                'the files store distances.')
    if cls is ModalityMissing:
        cfg = dict(type=cls.__name__, modality=modality, seed=seed)
    else:
        cfg = build_corruption(
            corruption,
            severity=severity,
            seed=seed,
            depth_encoding=enc['encoding'],
            depth_scale=enc['scale'],
            depth_range=enc['range'],
            depth_unit=depth_unit)
    return steps[:i + 1] + [cfg] + steps[i + 1:]


def prediction_keys(records: List[dict]) -> List[Tuple[str, str]]:
    """(metric key, column name) of the predictions every record has: the
    fused prediction (``mIoU``) and each branch (``<branch>.mIoU``, in the
    evaluator's order; a branch named like the fused column is called
    '<name> branch')."""
    keys = [('mIoU', 'fused')]
    for k in records[0]['metrics']:
        if k.endswith('.mIoU'):
            branch = k[:-len('.mIoU')]
            keys.append(
                (k, f'{branch} branch' if branch == 'fused' else branch))
    return [(k, n) for k, n in keys if all(k in r['metrics'] for r in records)]


class _ProgressHook(Hook):
    """One progress bar over every run's test iterations (rank 0)."""
    priority = 'VERY_LOW'

    def __init__(self, total: int) -> None:
        self.bar = ProgressBar(total) if get_rank() == 0 else None

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        if self.bar is not None:
            self.bar.update()


def _run_condition(runner: Runner, cfg: Config, pipeline: List[dict],
                   test_cfg: dict) -> Dict[str, float]:
    """Build a test loop on ``pipeline`` and run it; the metrics."""
    loader = copy.deepcopy(cfg.test_dataloader)
    loader.dataset.pipeline = pipeline
    # a fresh loader per condition: no idle workers left behind
    loader.persistent_workers = False
    runner._test_dataloader = loader
    runner._test_evaluator = copy.deepcopy(cfg.test_evaluator)
    runner._test_loop = runner.build_test_loop(copy.deepcopy(test_cfg))
    metrics = runner.test_loop.run()
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (numbers.Number, np.floating)) or (
            isinstance(v, np.ndarray) and v.size == 1)
    }


def format_table(records: List[dict], markdown: bool = False) -> str:
    """The mIoU table (one row per condition; change vs clean)."""
    keys = prediction_keys(records)
    clean = records[0]['metrics']
    header = ['corruption', 'severity'] + [f'{n} mIoU' for _, n in keys]
    rows = []
    for r in records:
        row = [
            r['corruption'],
            '-' if r['severity'] is None else str(r['severity'])
        ]
        for k, _ in keys:
            value = r['metrics'][k]
            if r['corruption'] == 'clean':
                row.append(f'{value:.2f}')
            else:
                row.append(f'{value:.2f} ({value - clean[k]:+.2f})')
        rows.append(row)
    if markdown:
        lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
        return '\n'.join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    lines = [fmt.format(*header), fmt.format(*('-' * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return '\n'.join(lines)


def plot(records: List[dict], path: str, title: str) -> Optional[str]:
    """mIoU vs severity per corruption, one panel per prediction; returns
    the reason if no plot could be made."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return ('matplotlib is not installed (pip install matplotlib); '
                'no plot written')
    keys = prediction_keys(records)
    clean = records[0]['metrics']
    names = []
    for r in records[1:]:
        if r['corruption'] not in names:
            names.append(r['corruption'])
    fig, axes = plt.subplots(
        1,
        len(keys),
        figsize=(5 * len(keys) + 1.5, 4),
        sharey=True,
        squeeze=False)
    cmap = plt.get_cmap('tab10')
    for ax, (key, label) in zip(axes[0], keys):
        ax.axhline(clean[key], color='black', lw=1, label='clean')
        for c, name in enumerate(names):
            rows = [r for r in records if r['corruption'] == name]
            if rows[0]['severity'] is None:
                ax.axhline(
                    rows[0]['metrics'][key],
                    color=cmap(c % 10),
                    ls='--',
                    label=name)
                continue
            xs = [0] + [r['severity'] for r in rows]
            ys = [clean[key]] + [r['metrics'][key] for r in rows]
            ax.plot(xs, ys, marker='o', color=cmap(c % 10), label=name)
        ax.set_title(f'{label} prediction')
        ax.set_xlabel('severity (0 = clean)')
        ax.set_xticks(range(0, 6))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('mIoU (%)')
    axes[0][-1].legend(
        fontsize=7, loc='center left', bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def main():
    args = parse_args()
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            raise SystemExit(f'file not found: {path}')
    if not args.depth_unit > 0:
        raise SystemExit(f'--depth-unit must be > 0, got {args.depth_unit}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        if cfg.get(key, None) is None:
            raise SystemExit(f'{args.config} has no {key}')
    name = osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out_dir or osp.join('work_dirs', 'robustness', name)
    cfg.work_dir = out_dir
    cfg.load_from = args.checkpoint
    if not args.verbose:
        cfg.log_level = 'WARNING'

    pipeline = cfg.test_dataloader.dataset.get('pipeline', None)
    if pipeline is None:
        raise SystemExit(f'{args.config}: test_dataloader.dataset has no '
                         'pipeline')
    conditions = conditions_of(args.corruptions, args.severities)
    try:
        pipelines = [
            corrupted_pipeline(
                pipeline,
                c,
                s,
                seed=args.seed,
                depth_unit=args.depth_unit,
                source=f'{args.config}: test_dataloader.dataset.pipeline',
                modalities=cfg.test_dataloader.dataset.get('modalities', None))
            for c, s in conditions
        ]
    except ValueError as e:
        raise SystemExit(str(e))
    test_cfg = copy.deepcopy(cfg.test_cfg)

    setup_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.call_hook('before_run')
    runner.load_or_resume()
    num_iters = len(
        runner.build_dataloader(
            dict(copy.deepcopy(cfg.test_dataloader),
                 persistent_workers=False)))
    rank = get_rank()
    if rank == 0:
        print(
            f'{len(conditions)} runs (clean + corruptions) x {num_iters} '
            f'test iterations per process, {get_world_size()} '
            'process(es)',
            flush=True)
    runner.register_hook(_ProgressHook(len(conditions) * num_iters))

    records = []
    start = time.perf_counter()
    for (corruption, severity), steps in zip(conditions, pipelines):
        t0 = time.perf_counter()
        metrics = _run_condition(runner, cfg, steps, test_cfg)
        records.append(
            dict(
                corruption=corruption,
                severity=severity,
                metrics=metrics,
                wall_s=round(time.perf_counter() - t0, 2)))
    runner.call_hook('after_run')
    total = time.perf_counter() - start
    if rank != 0:
        return
    sys.stdout.write('\n')
    clean = records[0]['metrics']
    for r in records:
        r['drop'] = {
            k: round(r['metrics'][k] - clean[k], 2)
            for k, _ in prediction_keys(records)
        }
    loader = next(t for t in pipelines[0] if transform_name(t) in LOADERS)
    summary = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        seed=args.seed,
        depth_unit=args.depth_unit,
        loader={
            k: v
            for k, v in loader.items() if k != 'type'
        },
        num_samples=len(runner.test_loop.dataloader.dataset),
        world_size=get_world_size(),
        wall_s=round(total, 1),
        results=records)
    atomic_write_text(
        json.dumps(summary, indent=2), osp.join(out_dir, 'robustness.json'))
    atomic_write_text(
        format_table(records, markdown=True) + '\n',
        osp.join(out_dir, 'robustness.md'))
    print(format_table(records))
    print(
        f'{len(records)} runs in {total:.1f} s; written: '
        f'{osp.join(out_dir, "robustness.json")}, robustness.md',
        end='')
    if args.no_plot:
        print()
        return
    why = plot(records, osp.join(out_dir, 'robustness.png'),
               f'{name} ({osp.basename(args.checkpoint)})')
    print(', robustness.png' if why is None else f'\n{why}')


if __name__ == '__main__':
    main()

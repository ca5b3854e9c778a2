"""Every GPU measurement of the training fast path (issue 16, item 3), in
one go, through ``tools/analysis_tools/benchmark.py``.

    python tools/analysis_tools/gpu_fast_path_check.py [--out-dir DIR]
        [--steps train-fp32 train-bf16 infer] [--infer-compile]
        [--timeout S] [--dry-run] [--smoke]

Steps (each a ``benchmark.py`` run writing ``DIR/<name>.json`` and
``DIR/<name>.log``; a summary ``DIR/summary.md`` is written after every
step, so a run cut short keeps what it measured):

* ``train-fp32``: MiT-B3, batch 2, 480x640, training step: (a) ours eager
  fp32, (a') ours compiled fp32 (backbone + head, the ``cfg.compile`` fast
  path), (b) literal fp32; FLOPs, TFLOP/s and share of the fp32 peak.
* ``train-bf16``: the same with (a)/(a') under bf16 autocast against (b)
  in fp32 (the 3x target); TFLOP/s and share of the bf16 peak.
* ``infer``: inference images/s at batch 1 and 8, 480x640, bf16, ours
  eager (and compiled with ``--infer-compile``) vs literal, for MiT-B3,
  MiT-B5, Swin-T and Swin-L.

Peaks (dense, TFLOP/s) are looked up from the device name (H100/H200 SXM:
fp32 67, bf16 989; A100: 19.5 / 312); fp32 matrix products run in full
fp32 (TF32 off, PyTorch's default). Override with ``--peak-fp32`` /
``--peak-bf16``.

``--dry-run`` prints the commands and checks that ``benchmark.py`` accepts
them and the configs exist, without running anything. ``--smoke`` runs a
miniature of the MiT steps on the CPU (MiT-B0, 64x64, no compile) to check
the plumbing and the summary.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))

B3 = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
INFER_CONFIGS = {
    'mit-b3':
    B3,
    'mit-b5':
    'configs/geminifusion/'
    'geminifusion_mit-b5_3xb2-300e_nyudv2-480x640.py',
    'swin-t':
    'configs/geminifusion/'
    'geminifusion_swin-t_3xb2-300e_nyudv2-480x640.py',
    'swin-l':
    'configs/geminifusion/'
    'geminifusion_swin-l_3xb2-300e_nyudv2-480x640.py',
}
#: dense peak TFLOP/s (fp32 without TF32, bf16 tensor cores)
PEAKS = {'H200': (67.0, 989.0), 'H100': (67.0, 989.0), 'A100': (19.5, 312.0)}
SMOKE_OPTIONS = [
    'model.backbone.arch=b0',
    'model.decode_head.in_channels=[32,64,160,256]',
    'model.decode_head.channels=32',
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out-dir', default='work_dirs/gpu_fast_path_check')
    p.add_argument(
        '--steps',
        nargs='+',
        choices=['train-fp32', 'train-bf16', 'infer'],
        default=['train-fp32', 'train-bf16', 'infer'])
    p.add_argument(
        '--infer-compile',
        action='store_true',
        help='also time compiled inference (one compilation per '
        'model and batch size: minutes)')
    p.add_argument(
        '--compile-mode',
        default=None,
        help='torch.compile mode of the compiled runs')
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument(
        '--warmup',
        type=int,
        default=5,
        help='warm-up steps (the compiled model compiles in the '
        'first one)')
    p.add_argument('--peak-fp32', type=float, default=None)
    p.add_argument('--peak-bf16', type=float, default=None)
    p.add_argument(
        '--timeout',
        type=int,
        default=570,
        help='seconds per benchmark.py run')
    p.add_argument('--dry-run', action='store_true')
    p.add_argument('--smoke', action='store_true')
    return p.parse_args(argv)


def device_peaks(args):
    """(fp32, bf16) peak TFLOP/s: given, or from the CUDA device name."""
    fp32, bf16 = args.peak_fp32, args.peak_bf16
    if fp32 is None or bf16 is None:
        name = ''
        try:
            import torch
            if torch.cuda.is_available():
                name = torch.cuda.get_device_name(0)
        except ImportError:
            pass
        for key, (f, b) in PEAKS.items():
            if key in name:
                fp32 = f if fp32 is None else fp32
                bf16 = b if bf16 is None else bf16
                break
    return fp32, bf16


def plan(args):
    """[(name, benchmark.py argv)] for the selected steps."""
    fp32_peak, bf16_peak = device_peaks(args)
    common = [
        '--repeats',
        str(args.repeats), '--warmup',
        str(args.warmup), '--no-unimodal', '--no-fusion-layer'
    ]
    if args.smoke:
        common = [
            '--repeats', '1', '--warmup', '0', '--no-unimodal',
            '--no-fusion-layer', '--device', 'cpu', '--threads', '1',
            '--isolation', 'none'
        ]
        size = ['--img-size', '64', '64']
    else:
        common += ['--device', 'cuda', '--isolation', 'none']
        size = ['--img-size', '480', '640']
    compile_flag = [] if args.smoke else ['--compile-compare']
    if args.compile_mode and not args.smoke:
        compile_flag += ['--compile-mode', args.compile_mode]
    opts = ['--cfg-options', *SMOKE_OPTIONS] if args.smoke else []
    runs = []
    if 'train-fp32' in args.steps:
        peak = ['--peak-tflops', str(fp32_peak)] if fp32_peak else []
        runs.append(('train-fp32', [
            B3, '--batch-size', '2', *size, '--modes', 'train', '--precision',
            'fp32', *compile_flag, *peak, *common, *opts
        ]))
    if 'train-bf16' in args.steps:
        peak = ['--peak-tflops', str(bf16_peak)] if bf16_peak else []
        runs.append(('train-bf16', [
            B3, '--batch-size', '2', *size, '--modes', 'train', '--precision',
            'bf16', '--literal-precision', 'fp32', *compile_flag, *peak,
            *common, *opts
        ]))
    if 'infer' in args.steps:
        infer_compile = compile_flag if args.infer_compile else []
        for arch, config in INFER_CONFIGS.items():
            if args.smoke and arch != 'mit-b3':
                continue  # the smoke options are MiT-shaped
            for batch in (1, 8):
                runs.append((f'infer-{arch}-b{batch}', [
                    config, '--batch-size',
                    str(batch), *size, '--modes', 'infer', '--precision',
                    'bf16', '--no-flops', *infer_compile, *common, *opts
                ]))
    return runs


def summarize(out_dir, names) -> str:
    """A markdown summary of the JSON results present in ``out_dir``."""
    lines = ['# GPU fast-path check', '']
    for name in names:
        path = osp.join(out_dir, f'{name}.json')
        if not osp.isfile(path):
            lines.append(f'- {name}: no result (see {name}.log)')
            continue
        with open(path) as f:
            res = json.load(f)
        models = res['models']
        flops = res.get('flops') or {}
        batch = res['args']['batch_size']
        peak = res['args'].get('peak_tflops')
        lines.append(f'## {name}: {res["device"]}, {res["date"]}')
        lines.append(f'`{res["command"]}`')
        lines.append('')
        lines.append('| model | mode | precision | ms | images/s | '
                     'TFLOP/s | share of peak |')
        lines.append('|---|---|---|---|---|---|---|')
        for key, r in models.items():
            kind, mode = key.split('/')
            label = {
                'fused': 'ours eager',
                'fused_compiled': 'ours compiled',
                'literal': 'literal',
                'unimodal': 'unimodal'
            }.get(kind, kind)
            fl = flops.get('fused' if kind == 'fused_compiled' else kind,
                           {}).get('train' if mode == 'train' else 'forward')
            tf = fl / r['median_s'] / 1e12 if fl else None
            share = f'{100 * tf / peak:.1f}%' if tf and peak else '-'
            lines.append(
                f'| {label} | {mode} | {r["precision"] or "fp32"} | '
                f'{r["median_s"] * 1e3:.1f} | {batch / r["median_s"]:.1f} '
                f'| {"-" if tf is None else format(tf, ".3g")} | {share} |')
        ms = {k: v['median_s'] for k, v in models.items()}
        for mode in ('train', 'infer'):
            lit = ms.get(f'literal/{mode}')
            for kind, label in (('fused', 'ours eager'), ('fused_compiled',
                                                          'ours compiled')):
                ours = ms.get(f'{kind}/{mode}')
                if lit and ours:
                    lines.append(f'- {mode}: speed-up of {label} over the '
                                 f'literal model: {lit / ours:.2f}x')
            if ms.get(f'fused/{mode}') and ms.get(f'fused_compiled/{mode}'):
                speed_up = ms[f'fused/{mode}'] / ms[f'fused_compiled/{mode}']
                lines.append(f'- {mode}: speed-up of compiled over eager: '
                             f'{speed_up:.2f}x')
        lines.append('')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    runs = plan(args)
    bench = osp.join(HERE, 'benchmark.py')
    if args.dry_run:
        sys.path.insert(0, HERE)
        import benchmark
        for name, argv_ in runs:
            assert osp.isfile(osp.join(REPO, argv_[0])), argv_[0]
            benchmark.parse_args(argv_)  # exits on an invalid option
            print(f'{name}: python tools/analysis_tools/benchmark.py '
                  f'{" ".join(argv_)} --json {args.out_dir}/{name}.json')
        return 0
    os.makedirs(args.out_dir, exist_ok=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    failed = 0
    for name, argv_ in runs:
        cmd = [
            sys.executable, bench, *argv_, '--json',
            osp.join(args.out_dir, f'{name}.json')
        ]
        print(
            f'[{time.strftime("%H:%M:%S")}] {name}: {" ".join(cmd)}',
            flush=True)
        with open(osp.join(args.out_dir, f'{name}.log'), 'w') as log:
            try:
                rc = subprocess.run(
                    cmd,
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = 'timeout'
        print(f'[{time.strftime("%H:%M:%S")}] {name}: exit {rc}', flush=True)
        failed += rc != 0
        summary = summarize(args.out_dir, [n for n, _ in runs])
        with open(osp.join(args.out_dir, 'summary.md'), 'w') as f:
            f.write(summary + '\n')
    print(summary)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

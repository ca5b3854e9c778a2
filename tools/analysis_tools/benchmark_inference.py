"""CPU inference latency of the ways to run one model, side by side.

    python tools/analysis_tools/benchmark_inference.py CONFIG [CHECKPOINT] \\
        [--candidates fp32 bf16 compile-fp32 compile-bf16 ort-fp32] \\
        [--fusion-last-k K [K ...]] [--threads 1] [--rounds 3] \\
        [--shape 480 640] [--cfg-options k=v ...] [--json OUT]

Every candidate predicts the same random normalised batch-1 input (rgb +
depth, ``--shape``): the segmentor's test path (backbone, head, ensemble,
logits resized to the input size with the config's ``resize_mode``,
argmax), as ``init_model`` + ``inference_model`` run it minus the data
pipeline:

* ``fp32``: PyTorch eager fp32, the baseline;
* ``bf16``: the same under bf16 autocast
  (``init_model(..., precision='bf16-force')``: bf16 whatever the CPU);
* ``compile-fp32`` / ``compile-bf16``: the backbone compiled in place
  (``torch.compile`` through :func:`geminifusion_mmseg.utils.compile.
  compile_modules`, the default CPU target), fp32 / bf16 autocast;
* ``ort-fp32``: ONNX Runtime (CPU provider) on the graph of
  ``tools/deployment/pytorch2onnx.py`` (:func:`export_onnx`, normalised
  float inputs, logits and argmax out).

``--fusion-last-k K ...`` adds an fp32 eager row per K: the config's model
with ``backbone.fusion_last_k=K`` (another model: no agreement figure).

One warm-up round (compilation, ONNX export happen before it), then
``--rounds`` rounds, each running every candidate once in turn, so that the
machine's load falls on all of them alike. Prints a markdown table: median
latency, its ratio to the fp32 eager median, the median of the per-round
ratios (each against the fp32 run of the same round) and the argmax
agreement with fp32 eager. Random weights unless CHECKPOINT is given
(latency does not depend on them; agreement does).
"""
import argparse
import copy
import json
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

CANDIDATES = ('fp32', 'bf16', 'compile-fp32', 'compile-bf16', 'ort-fp32')


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(
        description='CPU inference latency of fp32 / bf16 / compiled / '
        'ONNX Runtime runs of one model, side by side')
    p.add_argument('config')
    p.add_argument('checkpoint', nargs='?', default=None)
    p.add_argument(
        '--candidates',
        nargs='+',
        default=['fp32', 'bf16', 'compile-fp32', 'ort-fp32'],
        help=f'among {", ".join(CANDIDATES)} (fp32 is always run: the '
        'baseline)')
    p.add_argument(
        '--fusion-last-k',
        type=int,
        nargs='+',
        default=[],
        metavar='K',
        help='also time fp32 eager with backbone.fusion_last_k=K, per K')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument(
        '--shape', type=int, nargs=2, default=[480, 640], metavar=('H', 'W'))
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--json', default=None, help='write the results here')
    args = p.parse_args(argv)
    bad = [c for c in args.candidates if c not in CANDIDATES]
    if bad:
        p.error(f'unknown candidate(s) {bad}; choose among '
                f'{", ".join(CANDIDATES)}')
    if args.rounds < 1:
        p.error(f'--rounds must be >= 1, got {args.rounds}')
    if 'fp32' not in args.candidates:
        args.candidates = ['fp32'] + args.candidates
    return args


def _model(config, checkpoint, cfg_options):
    from geminifusion_mmseg.apis import init_model
    torch.manual_seed(0)
    model = init_model(config, checkpoint, cfg_options=cfg_options)
    model.branch_predictions = False  # the ensemble only, as the ONNX graph
    return model


def _torch_runner(model, x, precision):
    """Predict ``x`` with ``model`` in ``precision``; returns (H, W)."""
    from geminifusion_mmseg.apis.precision import set_inference_precision
    set_inference_precision(model, precision, 'cpu')

    def run():
        with torch.inference_mode():
            return model.predict(x)[0].pred_sem_seg.data[0]

    return run


def _ort_runner(model, x, threads, workdir):
    import onnxruntime as ort

    from geminifusion_mmseg.deployment import export_onnx
    path = osp.join(workdir, 'model.onnx')
    h, w = x.shape[-2:]
    export_onnx(model, path, shape=(h, w), preprocess=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    names = [i.name for i in sess.get_inputs()]
    # one input per modality: its 3 channels of the stacked input
    feeds = {n: x[:, 3 * i:3 * i + 3].numpy() for i, n in enumerate(names)}
    out_names = [o.name for o in sess.get_outputs()]

    def run():
        return torch.from_numpy(sess.run(['pred'], feeds)[0][0])

    assert 'pred' in out_names, out_names
    return run


def build_runners(args, x, workdir):
    """{row name: (callable -> (H, W) prediction, compares with fp32)}."""
    from geminifusion_mmseg.utils.compile import (compile_modules,
                                                  default_targets)
    base = _model(args.config, args.checkpoint, args.cfg_options)
    runners = {}
    for name in args.candidates:
        if name in ('fp32', 'bf16'):
            model = base if name == 'fp32' else copy.deepcopy(base)
            precision = 'fp32' if name == 'fp32' else 'bf16-force'
            runners[name] = (_torch_runner(model, x, precision), True)
        elif name.startswith('compile-'):
            model = copy.deepcopy(base)
            compile_modules(model, default_targets('cpu'), {})
            precision = 'fp32' if name == 'compile-fp32' else 'bf16-force'
            runners[name] = (_torch_runner(model, x, precision), True)
        elif name == 'ort-fp32':
            runners[name] = (_ort_runner(base, x, args.threads, workdir), True)
    for k in args.fusion_last_k:
        options = dict(args.cfg_options or {})
        options['model.backbone.fusion_last_k'] = k
        model = _model(args.config, None, options)
        runners[f'fp32, fusion_last_k={k}'] = (_torch_runner(model, x,
                                                             'fp32'), False)
    return runners


def time_rounds(runners, rounds):
    """One warm-up round, then ``rounds`` interleaved rounds.

    Returns:
        tuple[dict, dict]: seconds per run per row, last prediction per
        row.
    """
    preds = {name: run() for name, (run, _) in runners.items()}  # warm-up
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (run, _) in runners.items():
            t0 = time.perf_counter()
            preds[name] = run()
            times[name].append(time.perf_counter() - t0)
    return times, preds


def table(runners, times, preds) -> list:
    """Rows of the result: name, median_ms, ratio, paired_ratio,
    agreement (None where not comparable)."""
    base = statistics.median(times['fp32'])
    rows = []
    for name, (_, comparable) in runners.items():
        med = statistics.median(times[name])
        paired = statistics.median(a / b
                                   for a, b in zip(times[name], times['fp32']))
        agree = None
        if comparable:
            agree = float((preds[name] == preds['fp32']).float().mean())
        rows.append(
            dict(
                name=name,
                median_ms=1000 * med,
                ratio=med / base,
                paired_ratio=paired,
                agreement=agree,
                all_ms=[1000 * t for t in times[name]]))
    return rows


def cpu_description() -> str:
    from geminifusion_mmseg.apis.precision import (cpu_bf16_support,
                                                   cpu_model_name)
    return f'{cpu_model_name()}; {cpu_bf16_support()[1]}'


def main(argv=None):
    args = parse_args(argv)
    import geminifusion_mmseg  # noqa: F401  (registers the plugin)
    torch.set_num_threads(args.threads)
    h, w = args.shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 6, h, w, generator=g)
    with tempfile.TemporaryDirectory() as workdir:
        runners = build_runners(args, x, workdir)
        times, preds = time_rounds(runners, args.rounds)
    rows = table(runners, times, preds)

    print(f'## Inference latency: {osp.basename(args.config)}, batch 1, '
          f'{h}x{w}, {args.threads} thread(s), medians of {args.rounds} '
          f'interleaved round(s) after 1 warm-up; torch {torch.__version__}')
    print(f'CPU: {cpu_description()}')
    print()
    print('| candidate | median latency (ms) | vs fp32 eager | per-round '
          'ratio | argmax agreement vs fp32 eager |')
    print('|---|---|---|---|---|')
    for r in rows:
        agree = '—' if r['agreement'] is None else \
            f'{100 * r["agreement"]:.2f}%'
        print(f'| {r["name"]} | {r["median_ms"]:.1f} | {r["ratio"]:.2f}x | '
              f'{r["paired_ratio"]:.2f}x | {agree} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    config=args.config,
                    checkpoint=args.checkpoint,
                    shape=[1, h, w],
                    threads=args.threads,
                    rounds=args.rounds,
                    torch=torch.__version__,
                    cpu=cpu_description(),
                    rows=rows),
                f,
                indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

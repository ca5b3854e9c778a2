"""ONNX Runtime vs PyTorch eager latency of the same exported model, side by
side in one run (alternating, so both see the same machine load).

    python tools/deployment/benchmark_onnx.py CONFIG [CKPT] \\
        [--shape 480 640] [--threads 1] [--repeats 10] [--warmup 2] \\
        [--cfg-options ...] [--fp16] [--device cpu|cuda] [--json OUT] \\
        [--profile]

Both run the whole graph of ``tools/deployment/pytorch2onnx.py`` (uint8
RGB + raw depth in, encoding, normalisation, network, logits upsampled to
the input size and argmax out), batch 1, static shape. The PyTorch
baseline uses the segmentor's own operators (``F.interpolate`` for the
logits resize); for a bicubic ``test_cfg.resize_mode`` a second PyTorch
row (``pytorch_graph_form``) runs the graph's form of it (two matrix
products), to show how much of a difference is the runtime's. Reports the
median latency of each, their ratio to the baseline (of the medians, and
the median and range of the per-round ratios, each run against the PyTorch
run of the same round: the robust figure on a machine whose speed
drifts), the parity of the outputs and the model file size. Random
weights unless CKPT is given (latency does not depend on them).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time


def parse_args():
    parser = argparse.ArgumentParser(
        description='ONNX Runtime vs PyTorch eager latency (same model)')
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None)
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[480, 640], metavar=('H', 'W'))
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='intra-op threads of both runtimes (CPU)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument(
        '--fp16',
        action='store_true',
        help='fp16 graph (and PyTorch in fp16 on CUDA)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument(
        '--ort-fusions',
        action='store_true',
        help='also time a second export with ONNX Runtime '
        'contrib-op fusions (Gelu, MultiHeadAttention)')
    parser.add_argument(
        '--onnx', default=None, help='reuse/keep the exported file here')
    parser.add_argument('--json', default=None, help='write results here')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='after timing, profile one run of each: '
        'milliseconds per operator type (torch.profiler '
        'self CPU time; ONNX Runtime profiler kernel time)')
    parser.add_argument('--cfg-options', nargs='+', default=None)
    return parser.parse_args()


def main():
    args = parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch
    from mmengine.config import DictAction

    import geminifusion_mmseg  # noqa: F401
    from geminifusion_mmseg.apis import init_model
    from geminifusion_mmseg.deployment import (DeployableSegmentor,
                                               export_onnx, input_dtypes_of,
                                               preprocess_spec)
    from geminifusion_mmseg.deployment.onnx_export import _example_inputs

    options = None
    if args.cfg_options:
        ns = argparse.Namespace()
        DictAction(
            option_strings=['--cfg-options'], dest='o')(None, ns,
                                                        args.cfg_options)
        options = ns.o
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = init_model(args.config, args.checkpoint, cfg_options=options)
    h, w = args.shape
    path = args.onnx or osp.join(tempfile.mkdtemp(), 'model.onnx')
    paths = {'onnxruntime': path}
    if args.ort_fusions:
        paths['onnxruntime_fused'] = osp.splitext(path)[0] + '_fused.onnx'
    for name, p in paths.items():
        if not osp.isfile(p):
            export_onnx(
                model,
                p,
                shape=(h, w),
                fp16=args.fp16,
                ort_fusions=name.endswith('fused'))
    size_mib = os.path.getsize(path) / 2**20

    spec = preprocess_spec(model)
    # the baseline: PyTorch eager with the segmentor's own ops
    # (F.interpolate for every resize mode)
    wrapper = DeployableSegmentor(model, spec, matmul_bicubic=False).eval()
    # the exported graph's form run by PyTorch (differs only for bicubic)
    graph_wrapper = DeployableSegmentor(model, spec).eval()
    feeds = _example_inputs(spec, True, 1, h, w, input_dtypes_of(spec))
    cuda = args.device.startswith('cuda')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    providers = (['CUDAExecutionProvider', 'CPUExecutionProvider']
                 if cuda else ['CPUExecutionProvider'])
    sessions = {
        name: ort.InferenceSession(p, opts, providers=providers)
        for name, p in paths.items()
    }
    dev = torch.device(args.device)
    wrapper.to(dev)
    if cuda and args.fp16:
        model.half()
    frames = [torch.from_numpy(feeds[n]).to(dev) for n in spec.modalities]

    def run_torch(module):
        with torch.inference_mode():
            if cuda and args.fp16:
                x = module.encode(*frames).half()
                outs = [o.float() for o in model.branch_logits(x)]
                out = module.postprocess(outs, x.shape[2:])
            else:
                out = module(*frames)
            if cuda:
                torch.cuda.synchronize()
        return [o.cpu().numpy() for o in out]

    runners = {'pytorch': lambda: run_torch(wrapper)}
    if spec.resize_mode == 'bicubic':
        runners['pytorch_graph_form'] = lambda: run_torch(graph_wrapper)
    for name, sess in sessions.items():
        runners[name] = (lambda s: lambda: s.run(None, feeds))(sess)
    outs = {}
    for _ in range(args.warmup):
        for name, run in runners.items():
            outs[name] = run()
    wall = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    for _ in range(args.repeats):  # interleaved: the same load for all
        for name, run in runners.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            outs[name] = run()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
    ref = outs['pytorch']
    result = dict(
        config=args.config,
        cfg_options=args.cfg_options,
        shape=[1, h, w],
        device=args.device,
        threads=args.threads,
        fp16=args.fp16,
        ort_fusions=args.ort_fusions,
        repeats=args.repeats,
        onnx_mib=size_mib,
        torch=torch.__version__,
        onnxruntime=ort.__version__,
        runs={})
    pt_wall = statistics.median(wall['pytorch'])
    # CPU time of the calling thread (with --threads 1 both runtimes compute
    # there): robust on a loaded machine
    pt_cpu = statistics.median(cpu['pytorch'])
    print(f'{args.config} {h}x{w}, batch 1, {args.threads} thread(s), '
          f'medians of {args.repeats}; model file {size_mib:.1f} MiB')
    for name in runners:
        w_ms, c_ms = statistics.median(wall[name]), statistics.median(
            cpu[name])
        got = outs[name]
        rel = float(np.abs(got[0] - ref[0]).max() / np.abs(ref[0]).max())
        agree = float((got[1] == ref[1]).mean())
        # per round, against the PyTorch run just before it: robust to a
        # machine whose speed drifts between rounds
        paired = [a / b for a, b in zip(wall[name], wall['pytorch'])]
        result['runs'][name] = dict(
            wall_ms=1000 * w_ms,
            cpu_ms=1000 * c_ms,
            wall_ratio=w_ms / pt_wall,
            cpu_ratio=c_ms / max(pt_cpu, 1e-9),
            paired_ratio=statistics.median(paired),
            paired_ratio_range=[min(paired), max(paired)],
            wall_ms_all=[1000 * t for t in wall[name]],
            cpu_ms_all=[1000 * t for t in cpu[name]],
            max_rel_error=rel,
            agreement=agree)
        print(f'{name:19s} {1000 * w_ms:9.1f} ms wall ({w_ms / pt_wall:.2f}x'
              f'; per round {statistics.median(paired):.2f}x, '
              f'{min(paired):.2f}-{max(paired):.2f}), {1000 * c_ms:9.1f} ms '
              f'thread CPU ({c_ms / max(pt_cpu, 1e-9):.2f}x); max rel error '
              f'{rel:.1e}, agreement {100 * agree:.3f}%')
    if args.profile:
        result['profile_ms'] = _profile(run_torch, wrapper, paths, opts,
                                        providers, feeds)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


def _profile(run_torch, wrapper, paths, opts, providers, feeds, top=15):
    """Milliseconds per operator type of one run of PyTorch eager and of
    each ONNX Runtime session; prints the largest ``top`` of each."""
    import collections

    import onnxruntime as ort
    from torch.profiler import ProfilerActivity, profile
    tables = {}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_torch(wrapper)
    tables['pytorch'] = {
        e.key: e.self_cpu_time_total / 1000
        for e in prof.key_averages() if e.self_cpu_time_total > 0
    }
    for name, path in paths.items():
        opts.enable_profiling = True
        opts.profile_file_prefix = osp.join(tempfile.mkdtemp(), 'ort')
        session = ort.InferenceSession(path, opts, providers=providers)
        session.run(None, feeds)  # first run: allocations
        session.run(None, feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
        last = {}  # node -> (operator, microseconds) of the second run
        for e in events:
            if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time'):
                last[e['name']] = (e['args']['op_name'], e['dur'])
        per_op = collections.Counter()
        for op, us in last.values():
            per_op[op] += us / 1000
        tables[name] = dict(per_op)
        opts.enable_profiling = False
    for name, table in tables.items():
        total = sum(table.values())
        print(f'profile {name}: {total:.1f} ms in operators')
        for op, ms in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f'  {op:50s} {ms:9.1f} ms {100 * ms / total:5.1f}%')
    return tables


if __name__ == '__main__':
    sys.exit(main())

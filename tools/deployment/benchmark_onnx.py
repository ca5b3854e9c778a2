"""ONNX Runtime vs PyTorch eager latency of the same exported model, side by
side in one run (alternating, so both see the same machine load).

    python tools/deployment/benchmark_onnx.py CONFIG [CKPT] \\
        [--shape 480 640] [--threads 1] [--repeats 10] [--warmup 2] \\
        [--cfg-options ...] [--fp16] [--device cpu|cuda] [--json OUT]

Both run the whole graph of ``tools/deployment/pytorch2onnx.py`` (uint8
RGB + raw depth in, encoding, normalisation, network, logits upsampled to
the input size and argmax out), batch 1, static shape. Reports the median
latency of each, their ratio (ONNX Runtime / PyTorch), the parity of the
outputs and the model file size. Random weights unless CKPT is given
(latency does not depend on them).
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
    parser.add_argument('--shape', type=int, nargs=2, default=[480, 640],
                        metavar=('H', 'W'))
    parser.add_argument('--threads', type=int, default=1,
                        help='intra-op threads of both runtimes (CPU)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--fp16', action='store_true',
                        help='fp16 graph (and PyTorch in fp16 on CUDA)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--onnx', default=None,
                        help='reuse/keep the exported file here')
    parser.add_argument('--json', default=None, help='write results here')
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
                                               export_onnx, preprocess_spec)
    from geminifusion_mmseg.deployment.onnx_export import _example_inputs

    options = None
    if args.cfg_options:
        ns = argparse.Namespace()
        DictAction(option_strings=['--cfg-options'], dest='o')(
            None, ns, args.cfg_options)
        options = ns.o
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = init_model(args.config, args.checkpoint, cfg_options=options)
    h, w = args.shape
    path = args.onnx or osp.join(tempfile.mkdtemp(), 'model.onnx')
    if not osp.isfile(path):
        export_onnx(model, path, shape=(h, w), fp16=args.fp16)
    size_mib = os.path.getsize(path) / 2**20

    spec = preprocess_spec(model)
    wrapper = DeployableSegmentor(model, spec).eval()
    rgb, depth = _example_inputs(spec, True, 1, h, w, 'uint16')
    cuda = args.device.startswith('cuda')
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    providers = (['CUDAExecutionProvider', 'CPUExecutionProvider']
                 if cuda else ['CPUExecutionProvider'])
    sess = ort.InferenceSession(path, opts, providers=providers)
    feeds = {'rgb': rgb, 'depth': depth}
    dev = torch.device(args.device)
    wrapper.to(dev)
    if cuda and args.fp16:
        model.half()
    t_rgb, t_depth = torch.from_numpy(rgb).to(dev), torch.from_numpy(
        depth).to(dev)

    def run_torch():
        with torch.inference_mode():
            if cuda and args.fp16:
                x = wrapper.encode(t_rgb, t_depth).half()
                outs = [o.float() for o in model._branch_logits(x)]
                out = wrapper.postprocess(outs, x.shape[2:])
            else:
                out = wrapper(t_rgb, t_depth)
            if cuda:
                torch.cuda.synchronize()
        return [o.cpu().numpy() for o in out]

    def run_ort():
        return sess.run(None, feeds)

    for _ in range(args.warmup):
        ref, got = run_torch(), run_ort()
    t_pt, t_ort = [], []
    for _ in range(args.repeats):  # alternate: same load for both
        t0 = time.perf_counter()
        run_torch()
        t1 = time.perf_counter()
        run_ort()
        t2 = time.perf_counter()
        t_pt.append(t1 - t0)
        t_ort.append(t2 - t1)
    pt, ox = statistics.median(t_pt), statistics.median(t_ort)
    rel = float(np.abs(got[0] - ref[0]).max() / np.abs(ref[0]).max())
    agree = float((got[1] == ref[1]).mean())
    result = dict(
        config=args.config,
        cfg_options=args.cfg_options,
        shape=[1, h, w],
        device=args.device,
        threads=args.threads,
        fp16=args.fp16,
        repeats=args.repeats,
        pytorch_ms=1000 * pt,
        onnxruntime_ms=1000 * ox,
        ratio=ox / pt,
        pytorch_ms_all=[1000 * t for t in t_pt],
        onnxruntime_ms_all=[1000 * t for t in t_ort],
        onnx_mib=size_mib,
        max_rel_error=rel,
        agreement=agree,
        torch=torch.__version__,
        onnxruntime=ort.__version__)
    print(f'PyTorch eager  {1000 * pt:9.1f} ms (median of {args.repeats})')
    print(f'ONNX Runtime   {1000 * ox:9.1f} ms   ratio {ox / pt:.2f}x')
    print(f'model file     {size_mib:9.1f} MiB; max rel error {rel:.1e}, '
          f'argmax agreement {100 * agree:.3f}%')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

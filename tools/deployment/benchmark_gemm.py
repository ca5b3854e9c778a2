"""ONNX Runtime's GEMM kernel vs PyTorch's on the GEMM shapes of a MiT, side
by side: is the runtime's matrix product faster or slower on this CPU?

    python tools/deployment/benchmark_gemm.py [--threads 1] [--repeats 20] \\
        [--shape 480 640] [--width 64 128 320 512]

For every linear layer shape of a GeminiFusion MiT (B1-B5 widths by
default) at the given input size, batch 1 (two modalities, so 2 x tokens
rows): ``(rows x C_in) @ (C_in x C_out) + bias`` as one ONNX ``Gemm``
(weights constant and pre-packed, as in an exported model) and as
``torch.addmm``, interleaved, both with ``--threads`` intra-op threads.
Prints the median milliseconds, GFLOP/s and the ratio ONNX Runtime /
PyTorch per shape, then the FLOP-weighted ratio over the network's GEMMs
(the MLP, attention and fusion projections, weighted by how often each
shape runs in MiT-B3 by default).
"""
import argparse
import statistics
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(
        description='ONNX Runtime Gemm vs torch.addmm at MiT shapes')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[480, 640], metavar=('H', 'W'))
    parser.add_argument(
        '--width',
        type=int,
        nargs=4,
        default=[64, 128, 320, 512],
        help='embedding widths of the 4 stages')
    parser.add_argument(
        '--depths',
        type=int,
        nargs=4,
        default=[3, 4, 18, 3],
        help='blocks per stage (weights of the summary)')
    return parser.parse_args()


def _gemm_session(weight, bias, rows, threads):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    n, k = weight.shape
    graph = helper.make_graph(
        [helper.make_node('Gemm', ['a', 'w', 'b'], ['y'], transB=1)], 'gemm',
        [helper.make_tensor_value_info('a', TensorProto.FLOAT, [rows, k])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [rows, n])], [
            numpy_helper.from_array(weight, 'w'),
            numpy_helper.from_array(bias, 'b')
        ])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid('', 18)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), opts, providers=['CPUExecutionProvider'])


def main():
    args = parse_args()
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    h, w = args.shape
    rows_per_stage = [
        2 * ((h + s - 1) // s) * ((w + s - 1) // s) for s in (4, 8, 16, 32)
    ]
    # (rows, C_in, C_out, uses per block): C -> C 10 times (the fusion's
    # query, 2 values, key difference, output, judger's 2C -> C as two
    # halves and its second layer; the attention's query and output), the
    # MLP's C -> 4C and 4C -> C
    shapes = []
    for rows, c, depth in zip(rows_per_stage, args.width, args.depths):
        shapes += [(rows, c, c, 10 * depth), (rows, c, 4 * c, depth),
                   (rows, 4 * c, c, depth)]
    rng = np.random.RandomState(0)
    print(f'{args.threads} thread(s), medians of {args.repeats}')
    print(f"{'rows x C_in x C_out':>22} {'ORT ms':>8} {'GF/s':>6} "
          f"{'torch ms':>9} {'GF/s':>6} {'ratio':>6}")
    total_ort = total_torch = 0.0
    for rows, k, n, uses in shapes:
        a = rng.randn(rows, k).astype(np.float32)
        weight = (rng.randn(n, k) * 0.05).astype(np.float32)
        bias = rng.randn(n).astype(np.float32)
        session = _gemm_session(weight, bias, rows, args.threads)
        ta, tw, tb = (torch.from_numpy(x) for x in (a, weight, bias))
        feeds = {'a': a}
        for _ in range(3):
            session.run(None, feeds)
            torch.addmm(tb, ta, tw.t())
        t_ort, t_torch = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            session.run(None, feeds)
            t_ort.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            torch.addmm(tb, ta, tw.t())
            t_torch.append(time.perf_counter() - t0)
        o, p = statistics.median(t_ort), statistics.median(t_torch)
        gflop = 2 * rows * k * n / 1e9
        total_ort += uses * o
        total_torch += uses * p
        print(f'{rows:>9} x {k:>4} x {n:>4} {1000 * o:8.2f} {gflop / o:6.0f}'
              f' {1000 * p:9.2f} {gflop / p:6.0f} {o / p:6.2f}')
    print(f'weighted by uses per network (depths {args.depths}): ORT '
          f'{1000 * total_ort:.0f} ms, torch {1000 * total_torch:.0f} ms, '
          f'ratio {total_ort / total_torch:.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Operators / kernels per forward+backward of a GeminiFusion layer and of a
MiT block (with its fusion layer), eager against ``torch.compile``.

    python tools/analysis_tools/count_kernels.py [--arch b0]
        [--batch-size 2] [--img-size 240 320] [--stage 1] [--device cpu]
        [--repeats 10] [--no-compile] [--json OUT]

Eager: the aten operators each call runs (``torch.profiler``; operators
called by another aten operator are not counted again), forward and
backward. On a GPU each is at least one kernel launch, so this is the
launch count the host has to issue.

Compiled (inductor): the generated kernels (fused element-wise /
reduction loops; on CPU recorded with ``cpp.enable_kernel_profile``, on
CUDA the Triton kernels) plus the operators left to aten
(matrix products, convolutions, attention), forward and backward.

The inputs are the tokens the chosen stage of a MiT of ``--arch`` receives
for a batch of ``--batch-size`` RGB-D images of ``--img-size`` (both
modalities stacked: M*B rows). Also prints the median time per forward +
backward (``--repeats``).
"""
import argparse
import collections
import json
import os.path as osp
import statistics
import sys
import time

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from geminifusion_mmseg.models.backbones.gemini_mit import \
    GeminiFusionMiT  # noqa: E402
from geminifusion_mmseg.models.layers.gemini_fusion import \
    GeminiFusion  # noqa: E402

#: Name prefixes of Inductor's Triton kernels in a profile.
TRITON_PREFIXES = ('triton_', 'graph_0_triton_')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', default='b0')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument('--img-size', type=int, nargs=2, default=[240, 320])
    p.add_argument('--stage', type=int, default=1, choices=[1, 2, 3, 4])
    p.add_argument('--device', default='cpu')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--no-compile', action='store_true')
    p.add_argument('--json', help='also write the results to this file')
    return p.parse_args(argv)


#: aten operators that only make a view or read metadata (no kernel on a
#: GPU); ``aten::reshape`` of a non-viewable tensor runs a nested copy,
#: which is not counted at the top level either.
VIEW_OPS = frozenset('aten::' + n for n in (
    'view',
    'reshape',
    'transpose',
    't',
    'select',
    'unsqueeze',
    'squeeze',
    'expand',
    'split',
    'chunk',
    'narrow',
    'permute',
    'flatten',
    'unbind',
    'detach',
    'as_strided',
    'alias',
    'slice',
    '_reshape_alias',
    'unflatten',
    'contiguous',
    'to',
    'lift_fresh',
    'view_as',
    'expand_as',
    'numpy_T',
    'matrix_H',
    'mT',
    '_unsafe_view',
    'resolve_conj',
    'resolve_neg',
    'detach',
    # allocations (no kernel)
    'empty',
    'empty_strided',
    'new_empty_strided',
    'empty_like'))


def _top_level_ops(events) -> collections.Counter:
    """aten operators not nested in another aten operator."""
    counts = collections.Counter()
    for e in events:
        if not e.name.startswith('aten::'):
            continue
        parent, nested = e.cpu_parent, False
        while parent is not None:
            if parent.name.startswith('aten::'):
                nested = True
                break
            parent = parent.cpu_parent
        if not nested:
            counts[e.name] += 1
    return counts


def _kernels(events, device) -> collections.Counter:
    """Inductor-generated kernels (by name) and top-level aten operators."""
    counts = _top_level_ops(events)
    for e in events:
        if device.type == 'cpu' and 'cpp_fused' in e.name:
            counts['<inductor cpp kernel>'] += 1
        elif device.type == 'cuda' and e.name.startswith(TRITON_PREFIXES):
            counts['<inductor triton kernel>'] += 1
    return counts


def profile_fwd_bwd(fn, module, x, device, compiled: bool) -> dict:
    """Count ops (eager) or kernels (compiled) of one forward+backward.

    Gradients are reset to None first (``zero_grad(set_to_none=True)``, as
    in training), so no gradient accumulation is counted.
    """
    from torch.profiler import ProfilerActivity, profile
    fn(x).sum().backward()  # warm-up (compiles)
    fn(x).sum().backward()
    module.zero_grad(set_to_none=True)
    x.grad = None
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        y = fn(x)
        grad = torch.ones_like(y)
        # the sum's own backward is not part of the layer
        y.backward(grad)
    events = prof.events()
    counts = _kernels(events, device) if compiled else _top_level_ops(events)
    counts.pop('aten::ones_like', None)
    counts.pop('aten::empty_like', None)
    counts.pop('aten::fill_', None)
    out = dict(
        total=sum(counts.values()),
        compute=sum(v for k, v in counts.items() if k not in VIEW_OPS),
        by_name=dict(counts))
    if device.type == 'cuda':
        out['cuda_kernels'] = sum(1 for e in events
                                  if e.device_type.name == 'CUDA')
    return out


def time_fwd_bwd(fn, x, device, repeats: int) -> float:
    """Median seconds per forward + backward."""
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn(x).sum().backward()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def subjects(args, device):
    """(name, module, input) for the fusion layer and the MiT block."""
    torch.manual_seed(0)
    backbone = GeminiFusionMiT(arch=args.arch)
    s = args.stage
    # the first block of each stage (stages differ in width)
    firsts = {}
    for m in backbone.modules():
        if type(m).__name__ == 'GeminiFusionMiTBlock':
            firsts.setdefault(m.mlp.fc1.in_features, m)
    block = list(firsts.values())[s - 1]
    C = block.mlp.fc1.in_features
    H, W = args.img_size
    stride = 4 * 2**(s - 1)
    N = -(-H // stride) * -(-W // stride)
    hw = (-(-H // stride), -(-W // stride))
    MB = 2 * args.batch_size
    fusion = GeminiFusion(C).to(device).train()
    block = block.to(device).train()
    x = torch.randn(MB, N, C, device=device, requires_grad=True)
    return [
        (f'GeminiFusion layer ({MB}, {N}, {C})', fusion, lambda t: fusion(t),
         x),
        (f'MiT-{args.arch.upper()} stage-{s} block with fusion ({MB}, {N}, '
         f'{C})', block, lambda t, _b=block: _b(t, hw), x),
    ]


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = []
    for name, module, fn, x in subjects(args, device):
        row = dict(name=name)
        row['eager'] = profile_fwd_bwd(fn, module, x, device, compiled=False)
        row['eager']['median_ms'] = 1e3 * time_fwd_bwd(fn, x, device,
                                                       args.repeats)
        if not args.no_compile:
            import torch._inductor.config as inductor_config
            inductor_config.cpp.enable_kernel_profile = True
            module.compile()
            row['compiled'] = profile_fwd_bwd(
                fn, module, x, device, compiled=True)
            row['compiled']['median_ms'] = 1e3 * time_fwd_bwd(
                fn, x, device, args.repeats)
        results.append(row)
    print(f'device: {device}, torch {torch.__version__}, threads '
          f'{torch.get_num_threads()}')
    print('| forward+backward | eager: aten ops (without views) | compiled: '
          'kernels (generated + aten, without views) | eager ms | '
          'compiled ms |')
    print('|---|---|---|---|---|')
    for r in results:
        c = r.get('compiled')
        gen = '-' if c is None else sum(v for k, v in c['by_name'].items()
                                        if k.startswith('<'))
        print(f'| {r["name"]} | {r["eager"]["total"]} '
              f'({r["eager"]["compute"]}) | '
              f'{"-" if c is None else c["compute"]} '
              f'({gen} + {"-" if c is None else c["compute"] - gen}) | '
              f'{r["eager"]["median_ms"]:.2f} | '
              f'{"-" if c is None else format(c["median_ms"], ".2f")} |')
    for r in results:
        for mode in ('eager', 'compiled'):
            if mode in r:
                ops = ', '.join(f'{k} {v}' for k, v in sorted(
                    r[mode]['by_name'].items(), key=lambda kv: -kv[1]))
                print(f'{r["name"]}, {mode}: {ops}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())

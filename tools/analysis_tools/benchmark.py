"""Speed and memory of GeminiFusion against the literal and unimodal models.

    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT]
        [--batch-size 2] [--img-size H W] [--device cpu|cuda]
        [--precision fp32|bf16|fp16]
        [--literal-precision same|fp32|bf16|fp16] [--compile]
        [--compile-compare] [--compile-mode MODE] [--modes train infer]
        [--peak-tflops T]
        [--repeats N] [--warmup N] [--rounds R] [--memory-steps N]
        [--cuda-graphs] [--threads N] [--no-literal] [--no-unimodal]
        [--no-fusion-layer] [--no-flops] [--isolation fork|spawn|none]
        [--cfg-options k=v ...] [--json OUT]

mmseg's ``CONFIG CHECKPOINT`` form: with a CHECKPOINT (an mmseg checkpoint
of the config, or a released GeminiFusion file, read as
:func:`geminifusion_mmseg.apis.init_model` does) (a) and (b) hold its
weights; without one, random weights (the timings do not depend on them).
(c) always has random weights (another architecture).

In one run and on the same deterministic inputs it measures

(a) our model, built from the config's ``model`` (MultiModalEncoderDecoder);
(b) the literal published-style model (:mod:`geminifusion_mmseg.testing`:
    per-sample loop over ``nn.MultiheadAttention`` with 2 keys, modalities
    as separate passes) of the same architecture, holding (a)'s weights; a
    sanity check asserts that (a) and (b) give the same logits;
(c) the same backbone architecture and head on RGB alone (mmseg's
    ``EncoderDecoder`` + ``MixVisionTransformer``/``SwinTransformer``, our
    ``SegFormerMLPHead``).

For each: the training step (zero_grad, forward, loss, backward, AdamW step;
the loss is the sum of the 3 branch cross-entropies for (a)/(b), one for
(c)) and inference (eval, no_grad, forward to the logits); the median over
``--repeats`` timed iterations after ``--warmup`` untimed ones (and the
median over ``--rounds`` repetitions of the whole measurement), wall-clock
and process CPU time; and the peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` (weights, gradients, optimizer
  state and activations), reset after the model is built;
* CPU: peak resident set size (``VmHWM``) minus the RSS before the model
  was built, in a process of its own for every model and mode (forked right
  after the imports, so no earlier model's freed memory is reused) in which
  glibc serves every allocation >= 64 KiB with its own mmap, so the RSS
  follows the live tensors (see
  :class:`geminifusion_mmseg.utils.benchmark.MemoryMeter`). The peak is
  reset (``/proc/self/clear_refs``) after building, so it covers the weights,
  gradients, optimizer state and the steps but not construction
  transients. Timing runs in separate processes with the default
  allocator.

Also: the GeminiFusion layers alone (ours vs ``LiteralGeminiFusion`` on the
token shapes the model feeds them, forward + backward, summed over all
layers), and FLOPs from ``torch.utils.flop_counter`` (fused / unimodal
ratio). ``--compile`` applies ``torch.compile`` to (a) only (its backbone
and head, as the training fast path ``cfg.compile`` does);
``--compile-compare`` measures (a) both eager and compiled ("(a') ours,
compiled"), side by side; ``--precision`` uses ``torch.autocast``. With
FLOPs, the achieved TFLOP/s of each training step and inference (and the
share of ``--peak-tflops``), and images/s. See docs/benchmarks.md.
"""
import argparse
import collections
import datetime
import json
import os
import os.path as osp
import statistics
import sys

import model_counterparts as mc
import torch

# yapf: disable
from geminifusion_mmseg.apis.precision import cpu_model_name
from geminifusion_mmseg.utils.benchmark import (PRECISIONS, MemoryMeter,
                                                autocast, graphed_steps,
                                                mmap_large_allocations,
                                                run_isolated, tf32_description,
                                                tf32_off, timed)

# yapf: enable


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(
        description='Benchmark GeminiFusion (ours) against the literal '
        'published-style model and the unimodal RGB model.')
    p.add_argument('config', help='config file with a GeminiFusion model')
    p.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='weights of (a) and (b) (mmseg checkpoint or released '
        'GeminiFusion file); default: random weights')
    p.add_argument('--batch-size', type=int, default=2)
    p.add_argument(
        '--img-size',
        type=int,
        nargs=2,
        default=[240, 320],
        metavar=('H', 'W'))
    p.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        default=None,
        help='default: cuda if available, else cpu')
    p.add_argument(
        '--precision',
        choices=list(PRECISIONS),
        default='fp32',
        help='autocast dtype of (a) and (c)')
    p.add_argument(
        '--literal-precision',
        default='same',
        choices=['same'] + list(PRECISIONS),
        help='autocast dtype of (b); "same" as --precision. The '
        'bf16 GPU target compares (a) in bf16 with (b) in fp32.')
    p.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the backbone and head of (a) only')
    p.add_argument(
        '--compile-compare',
        action='store_true',
        help="measure (a) eager and (a') compiled (backbone and "
        'head) side by side')
    p.add_argument(
        '--compile-mode',
        default=None,
        help='torch.compile mode for --compile / '
        '--compile-compare, e.g. max-autotune-no-cudagraphs, '
        'reduce-overhead (default: torch\'s default)')
    p.add_argument(
        '--compile-targets',
        nargs='+',
        choices=['backbone', 'decode_head'],
        default=['backbone', 'decode_head'],
        help='what --compile / --compile-compare compile')
    p.add_argument(
        '--modes',
        nargs='+',
        choices=['train', 'infer'],
        default=['train', 'infer'],
        help='what to time: training step, inference, or both')
    p.add_argument(
        '--peak-tflops',
        type=float,
        default=None,
        help='the device\'s peak TFLOP/s at this precision: '
        'reports the share of it each model reaches')
    p.add_argument(
        '--cuda-graphs',
        action='store_true',
        help='also time our fusion layers replayed from CUDA '
        'graphs (fusion-layer comparison only; CUDA, fp32)')
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument(
        '--memory-steps',
        type=int,
        default=2,
        help='steps run after the timed ones to measure the peak '
        'memory')
    p.add_argument(
        '--rounds',
        type=int,
        default=1,
        help='repeat every measurement this many times, '
        'interleaving the models, and take the median (helps on '
        'a shared, noisy machine)')
    p.add_argument('--no-literal', action='store_true')
    p.add_argument('--no-unimodal', action='store_true')
    p.add_argument(
        '--no-fusion-layer',
        action='store_true',
        help='skip the fusion-layer-only comparison')
    p.add_argument('--no-flops', action='store_true')
    p.add_argument(
        '--isolation',
        choices=['fork', 'spawn', 'none'],
        default=None,
        help='one process per model and mode: fork (default on '
        'CPU: right after the imports), spawn (default on CUDA) '
        'or none (all in this process; CPU memory then less '
        'clean)')
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads in every measurement')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--json', help='also write all results to this file')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'model.backbone.arch=b0')
    args = p.parse_args(argv)
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.isolation is None:
        args.isolation = 'fork' if args.device == 'cpu' else 'spawn'
    if args.cuda_graphs and (args.device != 'cuda'
                             or args.precision != 'fp32'):
        p.error('--cuda-graphs needs --device cuda and --precision fp32')
    if args.literal_precision == 'same':
        args.literal_precision = args.precision
    if min(args.repeats, args.rounds, args.memory_steps) < 1 or \
            args.warmup < 0:
        p.error('--repeats, --rounds and --memory-steps must be >= 1, '
                '--warmup >= 0')
    return args


# ------------------------------------------------------------ measurements
def _setup(spec: dict):
    if spec['threads']:
        torch.set_num_threads(spec['threads'])
    cfg = mc.load_config(spec['config'], spec['cfg_options'])
    device = torch.device(spec['device'])
    return cfg, device


def _batch(spec, cfg, device):
    inputs, labels = mc.make_batch(spec['batch_size'], spec['img_size'],
                                   cfg.model['decode_head']['num_classes'],
                                   spec['seed'])
    return inputs.to(device), labels.to(device)


def measure_model(spec: dict) -> dict:
    """Time or peak memory (``spec['phase']``: 'time', 'memory' or 'both')
    of one model in one mode ('train' or 'infer')."""
    phase = spec['phase']
    note = ''
    if phase == 'memory' and spec['device'] == 'cpu':
        note = mmap_large_allocations()  # before anything is allocated
    cfg, device = _setup(spec)
    kind, mode = spec['kind'], spec['mode']
    inputs, labels = _batch(spec, cfg, device)
    meter = MemoryMeter(device, note)
    compiled = kind == 'fused_compiled' or (spec['compile']
                                            and kind == 'fused')
    kind = 'fused' if kind == 'fused_compiled' else kind
    model = mc.build(kind, cfg, spec['checkpoint']).to(device)
    if compiled:
        kwargs = {} if spec.get('compile_mode') is None else dict(
            mode=spec['compile_mode'])
        for target in spec.get('compile_targets', ('backbone', 'decode_head')):
            getattr(model, target).compile(**kwargs)
    precision = (
        spec['literal_precision'] if kind == 'literal' else spec['precision'])
    loss_fn, infer_fn = mc.step_functions(kind, model, inputs, labels)
    if mode == 'train':
        mc.set_train(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.AdamW(params, lr=6e-5, weight_decay=0.01)
        scaler = (
            torch.amp.GradScaler('cuda')
            if precision == 'fp16' and device.type == 'cuda' else None)

        def fn():
            optim.zero_grad(set_to_none=True)
            with autocast(device, precision):
                loss = loss_fn()
            if scaler is None:
                loss.backward()
                optim.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optim)
                scaler.update()
    else:
        model.eval()

        def fn():
            with torch.no_grad(), autocast(device, precision):
                infer_fn()

    times, cpu, peak = [], [], None
    if phase in ('time', 'both'):
        times, cpu = timed(fn, device, spec['warmup'], spec['repeats'])
    if phase in ('memory', 'both'):
        if not times:
            fn()  # one warm-up step (allocates the optimizer state)
        meter.start()
        for _ in range(spec['memory_steps']):
            fn()
        peak = meter.peak_mib()
    return dict(
        kind=spec['kind'],
        mode=mode,
        precision=precision,
        compiled=compiled,
        params=mc.param_count(model),
        times=times,
        median_s=statistics.median(times) if times else None,
        cpu_median_s=statistics.median(cpu) if cpu else None,
        peak_mib=peak,
        memory_method=meter.method,
        threads=torch.get_num_threads())


def sanity_check(spec: dict) -> dict:
    """(a) and (b) logits on the benchmark inputs, eval mode, fp32 (on CUDA
    with TF32 off, so that both compute in full fp32)."""
    cfg, device = _setup(spec)
    inputs, _ = _batch(spec, cfg, device)
    fused = mc.build('fused', cfg, spec['checkpoint']).to(device).eval()
    literal = mc.build('literal', cfg, spec['checkpoint']).to(device).eval()
    with torch.no_grad(), tf32_off():
        ours = fused.branch_logits(inputs)
        ref = literal([inputs[:, :3].contiguous(), inputs[:, 3:].contiguous()])
    branches = list(fused.branch_names)
    out = dict(branches={}, tolerance=spec['sanity_tol'])
    worst = 0.
    for name, a, b in zip(branches, ours, ref):
        rel = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
        out['branches'][name] = rel
        worst = max(worst, rel)
    out['max_rel_diff'] = worst
    out['passed'] = bool(worst < spec['sanity_tol'])
    return out


def fusion_layer_benchmark(spec: dict) -> dict:
    """Every GeminiFusion layer of (a) on the token shapes of this input,
    ours (``torch.compile``-d with ``--compile``) vs ``LiteralGeminiFusion``
    with the same weights; forward+backward and forward-only, summed over
    all layers."""
    from geminifusion_mmseg.models.layers import GeminiFusion
    from geminifusion_mmseg.testing.literal_fusion import LiteralGeminiFusion

    cfg, device = _setup(spec)
    inputs, _ = _batch(spec, cfg, device)
    fused = mc.build('fused', cfg, spec['checkpoint']).to(device).eval()
    shapes = {}

    def hook(module, args):
        key = (tuple(args[0].shape), module.num_heads)
        shapes.setdefault(key, [module, 0])[1] += 1

    handles = [
        m.register_forward_pre_hook(hook) for m in fused.modules()
        if isinstance(m, GeminiFusion)
    ]
    with torch.no_grad():
        fused(inputs, mode='tensor')
    for h in handles:
        h.remove()

    g = torch.Generator().manual_seed(spec['seed'])
    totals = collections.defaultdict(float)  # (name, mode) -> seconds
    per_shape = []

    def record(entry, name, mode, fn):
        t = statistics.median(
            timed(fn, device, spec['warmup'], spec['repeats'])[0])
        entry[f'{name}_{mode}_s'] = t
        totals[(name, mode)] += entry['count'] * t

    for (shape, heads), (ours, count) in shapes.items():
        ours = ours.train()
        literal = LiteralGeminiFusion(shape[-1], heads).to(device)
        literal.load_state_dict(ours.state_dict())
        x = torch.randn(shape, generator=g).to(device)
        grad = torch.randn(shape, generator=g).to(device)
        B = shape[0] // 2
        entry = dict(shape=list(shape), count=count)
        # --compile: ours compiled here too (as in the full model)
        ours_fn = torch.compile(ours) if spec['compile'] else ours
        for name, prec in (('ours', spec['precision']),
                           ('literal', spec['literal_precision'])):
            if name == 'ours':

                def forward(t, _m=ours_fn):
                    return _m(t)
            else:

                def forward(t, _m=literal):
                    return torch.cat(_m([t[:B], t[B:]]))

            xr = x.clone().requires_grad_()

            def train_fn():
                with autocast(device, prec):
                    y = forward(xr)
                y.backward(grad.to(y.dtype))

            def infer_fn():
                with torch.no_grad(), autocast(device, prec):
                    forward(x)

            record(entry, name, 'train', train_fn)
            record(entry, name, 'infer', infer_fn)
        if spec['cuda_graphs']:
            for mode, fn in graphed_steps(ours, x, grad).items():
                record(entry, 'graphed', mode, fn)
        per_shape.append(entry)
    return dict(
        layers=sum(e['count'] for e in per_shape),
        per_shape=per_shape,
        **{
            f'{n}_{m}_s': v
            for (n, m), v in totals.items()
        })


def flops(spec: dict) -> dict:
    """Forward (eval) and training (forward + loss + backward) FLOPs."""
    cfg, device = _setup(spec)
    inputs, labels = _batch(spec, cfg, device)
    out = {}
    for kind in spec['kinds']:
        model = mc.build(kind, cfg, spec['checkpoint']).to(device)
        loss_fn, infer_fn = mc.step_functions(kind, model, inputs, labels)
        model.eval()
        with torch.no_grad():
            fwd = mc.count_flops(infer_fn)
        mc.set_train(model)
        train = mc.count_flops(lambda: loss_fn().backward())
        out[kind] = dict(forward=fwd, train=train)
        del model
    return out


TASKS = {
    'model': measure_model,
    'sanity': sanity_check,
    'fusion': fusion_layer_benchmark,
    'flops': flops,
}


def run_task(spec: dict, isolation: str) -> dict:
    """Run one measurement, in a fresh process unless isolation='none'."""
    label = ' '.join(str(spec.get(k, ''))
                     for k in ('task', 'kind', 'mode')).strip()
    return run_isolated(TASKS[spec['task']], spec, isolation, label)


# ------------------------------------------------------------ reporting
def device_description(device: str) -> str:
    if device == 'cuda':
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() \
            else 'cuda (unavailable)'
    return f'{cpu_model_name()}, {os.cpu_count()} logical cores'


ALL_KINDS = tuple(mc.KINDS) + ('fused_compiled', )
SHORT = ('(a)', '(b)', '(c)', "(a')")


def _flops_kind(kind: str) -> str:
    return 'fused' if kind == 'fused_compiled' else kind


def _fmt(v, unit=''):
    return '-' if v is None else f'{v:.1f}{unit}'


def _ratio(num, den):
    return None if num is None or den is None or den == 0 else num / den


def report(args, results: dict) -> str:
    lines = []
    add = lines.append
    m = results['models']
    flop = results.get('flops') or {}
    add(f'## GeminiFusion benchmark: {osp.basename(args.config)}')
    add('')
    add(f'- date: {results["date"]}')
    add(f'- device: {results["device"]}; torch {torch.__version__}; '
        f'threads {results["threads"]}')
    add(f'- load average (1 min) at start / end: '
        f'{results["load_start"]:.2f} / {results["load_end"]:.2f}')
    add(f'- input: batch {args.batch_size}, {args.img_size[0]}x'
        f'{args.img_size[1]}; precision (a)/(c) {args.precision}, (b) '
        f'{args.literal_precision}' +
        ('; (a) torch.compile' if args.compile else ''))
    add('- weights of (a)/(b): ' +
        (args.checkpoint or 'random (no checkpoint given)'))
    if args.device == 'cuda':
        add(f'- fp32 on CUDA: {results["tf32"]}')
    add(f'- timing: median of {args.repeats} steps after {args.warmup} '
        f'warm-up, median over {args.rounds} round(s); isolation '
        f'{args.isolation}')
    methods = {r['memory_method'] for r in m.values() if r}
    add(f'- memory: {"; ".join(sorted(methods))}')
    add(f'- command: {results["command"]}')
    add('')
    add('| model | params (M) | train step (ms) | inference (ms) | '
        'train peak mem (MiB) | inference peak mem (MiB) | forward GFLOPs |')
    add('|---|---|---|---|---|---|---|')
    labels = dict(
        mc.KIND_LABELS,
        fused_compiled="(a') ours, fused, torch.compile of " +
        ' + '.join(args.compile_targets))
    for kind in ALL_KINDS:
        tr, inf = m.get((kind, 'train')), m.get((kind, 'infer'))
        if tr is None and inf is None:
            continue
        params = (tr or inf)['params'] / 1e6
        fl = flop.get(_flops_kind(kind), {}).get('forward')
        add(f'| {labels[kind]} | {params:.2f} | '
            f'{_fmt(tr and tr["median_s"] * 1e3)} | '
            f'{_fmt(inf and inf["median_s"] * 1e3)} | '
            f'{_fmt(tr and tr["peak_mib"])} | '
            f'{_fmt(inf and inf["peak_mib"])} | '
            f'{_fmt(fl and fl / 1e9)} |')
    add('')
    cpu = []
    for kind, short in zip(ALL_KINDS, SHORT):
        parts = [
            f'{what} {m[(kind, mode)]["cpu_median_s"] * 1e3:.1f}'
            for mode, what in (('train', 'train'), ('infer', 'inference'))
            if (kind, mode) in m
        ]
        if parts:
            cpu.append(f'{short} ' + ' / '.join(parts))
    add('process CPU time per step, ms (all threads; on a shared machine '
        'less sensitive to other load than wall time): ' + '; '.join(cpu))
    add('')

    def val(kind, mode, key):
        r = m.get((kind, mode))
        return None if r is None else r[key]

    def ratio_line(text, num, den, cpu_num=None, cpu_den=None):
        r = _ratio(num, den)
        line = f'- {text}: ' + ('-' if r is None else f'{r:.2f}x')
        rc = _ratio(cpu_num, cpu_den)
        if rc is not None:
            line += f' (CPU time: {rc:.2f}x)'
        add(line)

    thr = []
    for kind, short in zip(ALL_KINDS, SHORT):
        for mode, what, fkey in (('train', 'training', 'train'),
                                 ('infer', 'inference', 'forward')):
            r = m.get((kind, mode))
            if r is None:
                continue
            line = (f'- {short} {what}: '
                    f'{args.batch_size / r["median_s"]:.2f} images/s')
            fl = flop.get(_flops_kind(kind), {}).get(fkey)
            if fl:
                tf = fl / r['median_s'] / 1e12
                line += f', {tf:.2f} TFLOP/s'
                if args.peak_tflops:
                    line += (f' ({100 * tf / args.peak_tflops:.1f}% of '
                             f'{args.peak_tflops:g} peak)')
            thr.append(line)
    if thr:
        add('throughput (FLOPs counted as in the FLOPs section; the literal '
            "model's FLOPs are not counted):")
        lines.extend(thr)
        add('')
    if ('fused_compiled', 'train') in m or ('fused_compiled', 'infer') in m:
        add("(a) eager vs (a') torch.compile:")
        for mode, what in (('train', 'training step'), ('infer', 'inference')):
            if ('fused', mode) in m and ('fused_compiled', mode) in m:
                ratio_line(f'{what} speed-up (a/a\')',
                           val('fused', mode, 'median_s'),
                           val('fused_compiled', mode, 'median_s'),
                           val('fused', mode, 'cpu_median_s'),
                           val('fused_compiled', mode, 'cpu_median_s'))
            if ('literal', mode) in m and ('fused_compiled', mode) in m:
                ratio_line(f'{what} speed-up of (a\') over (b) literal',
                           val('literal', mode, 'median_s'),
                           val('fused_compiled', mode, 'median_s'))
        add('')

    if 'literal' in {k for k, _ in m}:
        add('(a) vs (b) literal:')
        for mode, what in (('train', 'training step'), ('infer', 'inference')):
            ratio_line(f'{what} speed-up (b/a)',
                       val('literal', mode, 'median_s'),
                       val('fused', mode, 'median_s'),
                       val('literal', mode, 'cpu_median_s'),
                       val('fused', mode, 'cpu_median_s'))
        for mode, what in (('train', 'training'), ('infer', 'inference')):
            ratio_line(f'{what} peak memory ratio (a/b)',
                       val('fused', mode, 'peak_mib'),
                       val('literal', mode, 'peak_mib'))
        add('')
    if 'unimodal' in {k for k, _ in m}:
        add('(a) vs (c) unimodal:')
        for mode, what in (('train', 'training step-time'),
                           ('infer', 'inference time')):
            ratio_line(f'{what} ratio (a/c)', val('fused', mode, 'median_s'),
                       val('unimodal', mode, 'median_s'),
                       val('fused', mode, 'cpu_median_s'),
                       val('unimodal', mode, 'cpu_median_s'))
        for mode, what in (('train', 'training'), ('infer', 'inference')):
            ratio_line(f'{what} peak memory ratio (a/c)',
                       val('fused', mode, 'peak_mib'),
                       val('unimodal', mode, 'peak_mib'))
        if 'fused' in flop and 'unimodal' in flop and \
                ('unimodal', 'train') in m:
            step_ratio = _ratio(
                val('fused', 'train', 'median_s'),
                val('unimodal', 'train', 'median_s'))
            fr = flop['fused']['train'] / flop['unimodal']['train']
            ff = flop['fused']['forward'] / flop['unimodal']['forward']
            add(f'- FLOPs ratio (a/c): forward {ff:.2f}x, training step '
                f'{fr:.2f}x; step-time ratio / training FLOPs ratio: '
                f'{step_ratio / fr:.2f}')
        add('')
    fl = results.get('fusion_layer')
    if fl:
        add(f'GeminiFusion layers alone ({fl["layers"]} layers, token shapes '
            f'of this input; ours {args.precision}'
            f'{" compiled" if args.compile else ""}, literal '
            f'{args.literal_precision}):')
        add(f'- forward+backward: ours {fl["ours_train_s"] * 1e3:.1f} ms, '
            f'literal {fl["literal_train_s"] * 1e3:.1f} ms, speed-up '
            f'{fl["literal_train_s"] / fl["ours_train_s"]:.2f}x')
        add(f'- forward: ours {fl["ours_infer_s"] * 1e3:.1f} ms, literal '
            f'{fl["literal_infer_s"] * 1e3:.1f} ms, speed-up '
            f'{fl["literal_infer_s"] / fl["ours_infer_s"]:.2f}x')
        if 'graphed_train_s' in fl:
            for mode, what in (('train', 'forward+backward'), ('infer',
                                                               'forward')):
                t = fl[f'graphed_{mode}_s']
                add(f'- {what}, ours replayed from CUDA graphs: '
                    f'{t * 1e3:.1f} ms, speed-up over the literal '
                    f'{fl[f"literal_{mode}_s"] / t:.2f}x')
        add('')
    s = results.get('sanity')
    if s:
        per = ', '.join(f'{k} {v:.1e}' for k, v in s['branches'].items())
        add(f'sanity check (a) vs (b) logits, eval fp32, max |diff| / '
            f'max |ref|: {per} -> '
            f'{"PASSED" if s["passed"] else "FAILED"} (tolerance '
            f'{s["tolerance"]:.0e})')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    # Imports and config parsing happen here, once: forked measurements
    # start from this state. No model is built in this process.
    mc.load_config(args.config, args.cfg_options)
    base = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        cfg_options=dict(args.cfg_options or {}),
        device=args.device,
        batch_size=args.batch_size,
        img_size=tuple(args.img_size),
        precision=args.precision,
        literal_precision=args.literal_precision,
        compile=args.compile,
        compile_mode=args.compile_mode,
        compile_targets=tuple(args.compile_targets),
        cuda_graphs=args.cuda_graphs,
        repeats=args.repeats,
        warmup=args.warmup,
        memory_steps=args.memory_steps,
        seed=args.seed,
        threads=args.threads,
        sanity_tol=1e-4)
    kinds = ['fused']
    if args.compile_compare:
        kinds.append('fused_compiled')
    if not args.no_literal:
        kinds.append('literal')
    if not args.no_unimodal:
        kinds.append('unimodal')
    load_start = os.getloadavg()[0]
    tf32 = tf32_description()
    # CPU: timing and memory in separate processes (the memory set-up
    # slows allocation down); CUDA: both in one.
    phases = ['time', 'memory'] if args.device == 'cpu' else ['both']
    runs = {}
    for rnd in range(args.rounds):
        for mode in args.modes:
            for kind in kinds:
                for phase in phases:
                    print(
                        f'[round {rnd + 1}/{args.rounds}] {kind} {mode} '
                        f'{phase} ...',
                        flush=True)
                    r = run_task(
                        dict(
                            base,
                            task='model',
                            kind=kind,
                            mode=mode,
                            phase=phase), args.isolation)
                    runs.setdefault((kind, mode), []).append(r)
    models = {}
    for key, rs in runs.items():
        timed = [x for x in rs if x['median_s'] is not None]
        measured = [x for x in rs if x['peak_mib'] is not None]
        r = dict(timed[0])
        r['round_medians_s'] = [x['median_s'] for x in timed]
        r['median_s'] = statistics.median(r['round_medians_s'])
        r['cpu_median_s'] = statistics.median(x['cpu_median_s'] for x in timed)
        r['round_peaks_mib'] = [x['peak_mib'] for x in measured]
        r['peak_mib'] = statistics.median(r['round_peaks_mib'])
        r['memory_method'] = measured[0]['memory_method']
        models[key] = r
    results = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        device=device_description(args.device),
        threads=next(iter(models.values()))['threads'],
        tf32=tf32,
        command=' '.join(['python'] + [osp.relpath(sys.argv[0])] +
                         sys.argv[1:]),
        models=models)
    if not args.no_fusion_layer and not args.no_literal:
        print('fusion layers ...', flush=True)
        results['fusion_layer'] = run_task(
            dict(base, task='fusion'), args.isolation)
    if not args.no_flops:
        print('FLOPs ...', flush=True)
        results['flops'] = run_task(
            dict(
                base,
                task='flops',
                kinds=[
                    k for k in kinds if k not in ('literal', 'fused_compiled')
                ]), args.isolation)
    if not args.no_literal:
        print('sanity check ...', flush=True)
        results['sanity'] = run_task(dict(base, task='sanity'), args.isolation)
    results['load_start'] = load_start
    results['load_end'] = os.getloadavg()[0]
    print()
    print(report(args, results))
    if args.json:
        dump = dict(results)
        dump['models'] = {f'{k}/{md}': v for (k, md), v in models.items()}
        dump['args'] = vars(args)
        with open(args.json, 'w') as f:
            json.dump(dump, f, indent=1, default=str)
    if results.get('sanity') and not results['sanity']['passed']:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())

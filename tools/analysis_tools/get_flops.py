"""FLOPs and parameters of a GeminiFusion model and its unimodal counterpart.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
        [--batch-size 1] [--literal] [--train] [--cfg-options k=v ...]
    python tools/analysis_tools/get_flops.py CONFIG --fusion-last-k K [K ...]

Counts with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is
2 FLOPs; matmul, bmm, baddbmm, convolutions and attention are counted,
elementwise work, normalisation and interpolation are not). The count for
``F.scaled_dot_product_attention`` runs on its math backend, whose two
matmuls the counter sees on every device (it has no formula for the fused
CPU kernel). mmengine's ``get_model_complexity_info`` counts neither
``baddbmm`` nor SDPA, which the GeminiFusion layers and the MiT
self-attention use.

Reports (a) our fused model, (c) the unimodal RGB-only model with the same
backbone architecture and head (see ``benchmark.py``), optionally (b) the
literal published-style model, their ratio, and the GeminiFusion layers'
share, checked layer by layer against the hand formula
(:func:`model_counterparts.fusion_layer_flops_formula`).

With ``--fusion-last-k K [K ...]`` it instead counts the fused model once
per K (the backbone's ``fusion_last_k``: GeminiFusion layers only in the
last K blocks; the paper's Table 8) and prints one row per K: parameters,
forward GFLOPs, and the fusion layers' count and GFLOPs (checked against
the formula as above).
"""
import argparse
import copy
import os.path as osp
import sys

import model_counterparts as mc
import torch


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='FLOPs and parameters of a '
                                'GeminiFusion model and the unimodal one')
    p.add_argument('config')
    p.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[480, 640],
        metavar=('H', 'W'),
        help='input size (default 480 640)')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument(
        '--literal',
        action='store_true',
        help='also count the literal published-style model')
    p.add_argument(
        '--train',
        action='store_true',
        help='also count a training step (forward + loss + '
        'backward)')
    p.add_argument(
        '--fusion-last-k',
        type=int,
        nargs='+',
        metavar='K',
        help="count the fused model once per K with the backbone's "
        'fusion_last_k=K (fusion only in the last K blocks; the paper\'s '
        'Table 8) and print one row per K')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    if args.fusion_last_k and (args.literal or args.train):
        p.error('--fusion-last-k counts the fused forward only; it cannot '
                'be combined with --literal or --train')
    return args


def check_fusion_layer(channels: int = 32,
                       tokens: int = 7,
                       batch: int = 2,
                       num_heads: int = 8) -> dict:
    """Count one :class:`GeminiFusion` forward and compare with the hand
    formula; the same for the literal layer. Returns the numbers and
    whether they agree exactly."""
    from geminifusion_mmseg.models.layers import GeminiFusion
    from geminifusion_mmseg.testing.literal_fusion import LiteralGeminiFusion

    layer = GeminiFusion(channels, num_heads)
    x = torch.randn(2 * batch, tokens, channels)
    counted = mc.count_flops(lambda: layer(x))
    expected = mc.fusion_layer_flops_formula(batch * tokens, channels)
    literal = LiteralGeminiFusion(channels, num_heads)
    counted_lit = mc.count_flops(lambda: literal([x[:batch], x[batch:]]))
    expected_lit = mc.literal_fusion_flops_formula(batch * tokens, channels,
                                                   num_heads)
    return dict(
        counted=counted,
        formula=expected,
        literal_counted=counted_lit,
        literal_formula=expected_lit,
        ok=counted == expected and counted_lit == expected_lit)


def fusion_layer_flops(model, inputs) -> dict:
    """FLOPs of every GeminiFusion layer of ``model`` on the token shapes
    this input gives, counted and by the hand formula."""
    from geminifusion_mmseg.models.layers import GeminiFusion
    shapes = []

    def hook(module, args):
        shapes.append((module, tuple(args[0].shape)))

    handles = [
        m.register_forward_pre_hook(hook) for m in model.modules()
        if isinstance(m, GeminiFusion)
    ]
    with torch.no_grad():
        model(inputs, mode='tensor')
    for h in handles:
        h.remove()
    counted = formula = 0
    for module, shape in shapes:
        x = torch.zeros(shape)
        with torch.no_grad():
            counted += mc.count_flops(lambda: module(x))
        MB, N, C = shape
        formula += mc.fusion_layer_flops_formula(MB // 2 * N, C)
    return dict(layers=len(shapes), counted=counted, formula=formula)


def count_model(kind: str, cfg, inputs, labels, train: bool) -> dict:
    model = mc.build(kind, cfg).eval()
    loss_fn, infer_fn = mc.step_functions(kind, model, inputs, labels)
    with torch.no_grad():
        fwd = mc.count_flops(infer_fn)
    out = dict(params=mc.param_count(model), forward=fwd)
    if train:
        mc.set_train(model)
        out['train'] = mc.count_flops(lambda: loss_fn().backward())
    if kind == 'fused':
        out['fusion'] = fusion_layer_flops(model.eval(), inputs)
    return out


def fusion_depth_rows(cfg, inputs, labels, ks) -> list:
    """Parameters and forward FLOPs of the fused model for each
    ``fusion_last_k`` in ``ks``.

    Returns:
        list[dict]: per k: ``k``, ``params``, ``forward`` (FLOPs) and
        ``fusion`` (:func:`fusion_layer_flops`).
    """
    rows = []
    for k in ks:
        cfg_k = copy.deepcopy(cfg)
        cfg_k.model['backbone']['fusion_last_k'] = k
        res = count_model('fused', cfg_k, inputs, labels, False)
        res['k'] = k
        rows.append(res)
    return rows


def print_fusion_depth_rows(rows: list) -> bool:
    """Print the table of :func:`fusion_depth_rows`; returns whether
    every fusion-layer count matched the formula."""
    print('| fusion_last_k | params (M) | forward GFLOPs | GeminiFusion '
          'layers | their GFLOPs |')
    print('|---|---|---|---|---|')
    ok = True
    for r in rows:
        f = r['fusion']
        ok = ok and f['counted'] == f['formula']
        print(f'| {r["k"]} | {r["params"] / 1e6:.2f} | '
              f'{r["forward"] / 1e9:.2f} | {f["layers"]} | '
              f'{f["counted"] / 1e9:.2f} |')
    print()
    print('GeminiFusion layer counts vs the formula 16*M*L*C^2 + 4*M*C^2: '
          f'{"OK" if ok else "MISMATCH"}')
    return ok


def main(argv=None):
    args = parse_args(argv)
    cfg = mc.load_config(args.config, args.cfg_options)
    inputs, labels = mc.make_batch(args.batch_size, tuple(args.shape),
                                   cfg.model['decode_head']['num_classes'])
    if args.fusion_last_k:
        H, W = args.shape
        print(f'## Fusion depth (fusion_last_k): {osp.basename(args.config)}'
              f', input {args.batch_size}x(3 per modality)x{H}x{W}, torch '
              f'{torch.__version__} FlopCounterMode (multiply-add = 2 FLOPs)')
        print()
        ok = print_fusion_depth_rows(
            fusion_depth_rows(cfg, inputs, labels, args.fusion_last_k))
        return 0 if ok else 1
    kinds = ['fused', 'unimodal'] + (['literal'] if args.literal else [])
    res = {k: count_model(k, cfg, inputs, labels, args.train) for k in kinds}

    H, W = args.shape
    print(f'## FLOPs: {osp.basename(args.config)}, input {args.batch_size}x'
          f'(3 per modality)x{H}x{W}, torch {torch.__version__} '
          'FlopCounterMode (multiply-add = 2 FLOPs)')
    print()
    head = '| model | params (M) | forward GFLOPs |'
    rule = '|---|---|---|'
    if args.train:
        head += ' training-step GFLOPs |'
        rule += '---|'
    print(head)
    print(rule)
    for k in kinds:
        r = res[k]
        line = (f'| {mc.KIND_LABELS[k]} | {r["params"] / 1e6:.2f} | '
                f'{r["forward"] / 1e9:.2f} |')
        if args.train:
            line += f' {r["train"] / 1e9:.2f} |'
        print(line)
    print()
    a, c = res['fused'], res['unimodal']
    print(f'fused / unimodal: forward {a["forward"] / c["forward"]:.2f}x, '
          f'params {a["params"] / c["params"]:.2f}x' +
          (f', training step {a["train"] / c["train"]:.2f}x' if args.
           train else ''))
    if args.literal:
        b = res['literal']
        print(f'fused / literal: forward {a["forward"] / b["forward"]:.2f}x')
    f = a['fusion']
    status = 'OK' if f['counted'] == f['formula'] else 'MISMATCH'
    print(f'GeminiFusion layers ({f["layers"]}): {f["counted"] / 1e9:.3f} '
          f'GFLOPs counted, {f["formula"] / 1e9:.3f} by the formula '
          f'16*M*L*C^2 + 4*M*C^2 ({status}); '
          f'{100 * f["counted"] / a["forward"]:.1f}% of the forward')
    check = check_fusion_layer()
    print(f'fusion-layer formula check (C=32, B=2, N=7): ours '
          f'{check["counted"]} counted vs {check["formula"]}, literal '
          f'{check["literal_counted"]} vs {check["literal_formula"]} -> '
          f'{"OK" if check["ok"] else "MISMATCH"}')
    return 0 if check['ok'] and status == 'OK' else 1


if __name__ == '__main__':
    sys.exit(main())

"""Export every zoo backbone (random weights) and check ONNX Runtime parity.

    python tools/deployment/zoo_export_matrix.py [--shape 161 211] \\
        [--dynamic-mit] [--dynamic-swin] [--only mit-b0 swin-t ...] \\
        [--json OUT]

One row per zoo model and graph kind (static at ``--shape``; dynamic for
the MiT backbones, DeLiVER and MFNet included, with ``--dynamic-mit``, for
the Swin ones with ``--dynamic-swin`` (about 5-10 CPU minutes each):
traced at ``--shape``, or at the next size that pads everywhere for Swin,
and checked at more sizes):
export seconds, file size, max relative error and argmax agreement
(``verify_onnx``). The DeLiVER and MFNet models (``deliver-*``,
``mfnet-rgbt``) export one graph input per modality, in the default dtype
of each (:func:`~geminifusion_mmseg.deployment.input_dtypes_of`).
Weights are random: parity does not
depend on them, and no checkpoint download is needed.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

MIT = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
DELIVER = ('configs/geminifusion/'
           'geminifusion_mit-b2_8xb1-200e_deliver-{}-1024x1024.py')
ZOO = {
    'mit-b0': (MIT, {
        'model.backbone.arch': 'b0',
        'model.decode_head.in_channels': [32, 64, 160, 256]
    }),
    'mit-b1': (MIT, {
        'model.backbone.arch': 'b1'
    }),
    'mit-b2': (MIT, {
        'model.backbone.arch': 'b2'
    }),
    'mit-b3': (MIT, {}),
    'mit-b4': (MIT, {
        'model.backbone.arch': 'b4'
    }),
    'mit-b5': ('configs/geminifusion/'
               'geminifusion_mit-b5_3xb2-300e_nyudv2-480x640.py', {}),
    'swin-t': ('configs/geminifusion/'
               'geminifusion_swin-t_3xb2-300e_nyudv2-480x640.py', {}),
    'swin-s': ('configs/geminifusion/'
               'geminifusion_swin-s_3xb2-300e_nyudv2-480x640.py', {}),
    'swin-l': ('configs/geminifusion/'
               'geminifusion_swin-l_3xb2-300e_nyudv2-480x640.py', {}),
    'swin-l-384': ('configs/geminifusion/'
                   'geminifusion_swin-l-384_3xb2-300e_nyudv2-480x640.py', {}),
    # the K-modality zoo (DeLiVER code line): one graph input per modality
    'deliver-rgbd': (DELIVER.format('rgbd'), {}),
    'deliver-rgbe': (DELIVER.format('rgbe'), {}),
    'deliver-rgbl': (DELIVER.format('rgbl'), {}),
    'deliver-rgbdel': (DELIVER.format('rgbdel'), {}),
    'mfnet-rgbt': ('configs/mfnet/'
                   'geminifusion_mit-b4_4xb4-500e_mfnet-rgbt-480x640.py', {}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shape', type=int, nargs=2, default=[161, 211])
    parser.add_argument('--dynamic-mit', action='store_true')
    parser.add_argument('--dynamic-swin', action='store_true')
    parser.add_argument('--only', nargs='+', default=None, choices=sorted(ZOO))
    parser.add_argument('--json', default=None)
    args = parser.parse_args()
    import torch

    import geminifusion_mmseg  # noqa: F401
    from geminifusion_mmseg.apis import init_model
    from geminifusion_mmseg.deployment import export_onnx, verify_onnx
    rows = []
    tmp = tempfile.mkdtemp()
    for name in args.only or ZOO:
        cfg, opts = ZOO[name]
        dynamic = (args.dynamic_mit and not name.startswith('swin')) or (
            args.dynamic_swin and name.startswith('swin'))
        kinds = [False] + ([True] if dynamic else [])
        torch.manual_seed(0)
        model = init_model(cfg, None, cfg_options=opts or None)
        for dynamic in kinds:
            path = osp.join(tmp, f'{name}.onnx')
            row = dict(backbone=name, dynamic=dynamic, shape=list(args.shape))
            try:
                info = export_onnx(
                    model, path, shape=tuple(args.shape), dynamic=dynamic)
                rep = verify_onnx(path, model, raise_on_failure=False)
                row.update(
                    inputs={
                        n: info.input_dtypes.get(n, 'uint8')
                        for n in info.input_names
                    },
                    export_s=round(info.seconds, 1),
                    mib=round(info.file_size / 2**20, 1),
                    checked=[r['size'] for r in rep.rows],
                    max_rel_error=rep.max_rel_error,
                    min_agreement=rep.min_agreement,
                    passed=rep.passed)
            except Exception as e:  # report and go on
                row.update(
                    passed=False, error=f'{type(e).__name__}: {e}'[:500])
            if osp.exists(path):
                os.remove(path)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del model
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r['passed'] for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())

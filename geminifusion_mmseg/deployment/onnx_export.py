"""Export a segmentor to ONNX and check ONNX Runtime against PyTorch.

.. code-block:: python

    from geminifusion_mmseg.apis import init_model
    from geminifusion_mmseg.deployment import export_onnx, verify_onnx

    model = init_model(CONFIG, CHECKPOINT)
    info = export_onnx(model, 'model.onnx', shape=(480, 640), dynamic=True)
    report = verify_onnx('model.onnx', model)   # raises on a parity failure

The graph has one input per modality of the model (RGB-D: ``rgb``,
``depth``; K = 3, 4: e.g. ``rgb``, ``depth``, ``event``, ``lidar``), each
the frames as stored (:meth:`PreprocessSpec.channels` gives the layout,
``input_dtypes`` the dtype).

The exporter is ``torch.onnx.export(dynamo=True)`` (``torch.export`` +
onnxscript); ONNX-level graph optimisation is left to ONNX Runtime.
"""
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import print_log

from ..utils.atomic_io import atomic_output
from .metadata import METADATA_KEYS, read_onnx_metadata, write_onnx_metadata
from .wrapper import DeployableSegmentor, PreprocessSpec, preprocess_spec

__all__ = [
    'export_onnx', 'verify_onnx', 'default_verify_sizes', 'aligned_size',
    'ParityReport', 'ExportInfo', 'dynamic_trace_size', 'DEPTH_DTYPES',
    'INPUT_DTYPES', 'FP32_TOLERANCE', 'FP16_TOLERANCE', 'METADATA_KEYS',
    'input_dtypes_of'
]

#: numpy dtype of a modality input (``depth``, ``event``, ...) by name.
INPUT_DTYPES = {
    'uint16': np.uint16,
    'uint8': np.uint8,
    'float32': np.float32,
}
_TORCH_DTYPES = {
    np.uint16: torch.uint16,
    np.uint8: torch.uint8,
    np.float32: torch.float32,
}
#: The same table under its RGB-D name.
DEPTH_DTYPES = INPUT_DTYPES
#: (max relative error, min argmax agreement) for fp32 graphs.
FP32_TOLERANCE = (1e-4, 0.999)
#: The same for ``--fp16`` graphs, compared with the fp32 PyTorch model.
FP16_TOLERANCE = (2e-2, 0.99)


def _window_and_patch(model: nn.Module) -> Tuple[int, int]:
    """Largest window size of any windowed-attention module (0: none) and
    the backbone's patch size (4 if it names none)."""
    windows = [
        m.window_size for m in model.backbone.modules()
        if isinstance(getattr(m, 'window_size', None), int)
    ]
    patch = getattr(model.backbone, 'patch_size', 4)
    return (max(windows) if windows else 0,
            patch if isinstance(patch, int) else 4)


def _needs_all_padding(s: int,
                       window: int,
                       patch: int,
                       stages: int = 4) -> bool:
    """Whether a side of ``s`` pixels is padded at every padding point of a
    windowed backbone: not a patch multiple, odd at every 2x2 merge, not a
    window multiple at any stage."""
    if s % patch == 0:
        return False
    side = math.ceil(s / patch)
    for i in range(stages):
        if side % window == 0:
            return False
        if i < stages - 1:
            if side % 2 == 0:
                return False
            side = math.ceil(side / 2)
    return True


def dynamic_trace_size(model: nn.Module, h: int, w: int) -> Tuple[int, int]:
    """The (h, w) to trace a dynamic-shape export at.

    ``torch.export`` follows Python branches on shapes with the example
    input's values: a Swin backbone skips its zero-padding (to the patch
    size, to window multiples, before 2x2 merges) where the example needs
    none, and that graph is then wrong at sizes that need it. Tracing at a
    size that takes EVERY padding branch keeps all pads in the graph, with
    pad amounts computed from the runtime shape (zero where none is needed),
    so the graph is valid at every size. Backbones without windows (MiT)
    trace at ``(h, w)``.

    Returns:
        tuple[int, int]: The smallest sizes >= (h, w) that pad everywhere.
    """
    window, patch = _window_and_patch(model)
    if not window:
        return h, w
    out = []
    for s in (h, w):
        t = s
        while not _needs_all_padding(t, window, patch):
            t += 1
        out.append(t)
    return tuple(out)


def aligned_size(model: nn.Module, h: int, w: int) -> Tuple[int, int]:
    """A size near (h, w) where a windowed backbone pads nowhere (sides
    multiples of ``patch * 8 * window``); (h + 32, w + 32) rounded to 32
    for other backbones. Used to check dynamic graphs off their trace."""
    window, patch = _window_and_patch(model)
    unit = patch * 8 * window if window else 32
    return (max(unit,
                round(h / unit) * unit), max(unit,
                                             round(w / unit) * unit))


@dataclass
class ExportInfo:
    """What :func:`export_onnx` wrote."""
    path: str
    shape: Tuple[int, int]
    trace_shape: Tuple[int, int]
    dynamic: bool
    batch: int
    opset: int
    fp16: bool
    preprocess: bool
    branches: bool
    depth_dtype: Optional[str]
    input_names: List[str]
    output_names: List[str]
    seconds: float
    file_size: int
    input_dtypes: Dict[str, str] = field(default_factory=dict)


def input_dtypes_of(
        spec: PreprocessSpec,
        depth_dtype: Optional[str] = None,
        input_dtypes: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The dtype name of each graph input.

    Args:
        spec (PreprocessSpec): Gives the modalities and their encodings.
        depth_dtype (str, optional): Of the ``depth`` input (RGB-D name of
            ``input_dtypes['depth']``).
        input_dtypes (dict, optional): ``{modality: dtype}`` (a key of
            :data:`INPUT_DTYPES`) for modalities other than RGB.

    Returns:
        dict[str, str]: ``{modality: dtype}``: 'uint8' for RGB; the given
        one; else 'uint16' for the metric depth encodings (millimetres as
        stored) and 'uint8' for the others (8-bit images, HHA).
    """
    given = dict(input_dtypes or {})
    if depth_dtype is not None:
        given.setdefault('depth', depth_dtype)
    unknown = sorted(set(given) - set(spec.modalities))
    if unknown:
        raise ValueError(f'export_onnx: input dtypes given for {unknown}, '
                         f'which are not among the model\'s modalities '
                         f'{list(spec.modalities)}')
    if given.get('rgb', 'uint8') != 'uint8':
        raise ValueError('export_onnx: the rgb input is uint8')
    out = {}
    for name in spec.modalities:
        default = 'uint16' if spec.encoding(name).is_metric else 'uint8'
        out[name] = given.get(name, default)
        if out[name] not in INPUT_DTYPES:
            what = 'depth_dtype' if name == 'depth' else \
                f'input_dtypes[{name!r}]'
            raise ValueError(f'export_onnx: {what}={out[name]!r}; '
                             f'choose one of {sorted(INPUT_DTYPES)}')
    return out


def _example_inputs(spec: PreprocessSpec,
                    preprocess: bool,
                    batch: int,
                    h: int,
                    w: int,
                    dtypes: Dict[str, str],
                    seed: int = 0) -> Dict[str, np.ndarray]:
    """Random inputs of the graph's contract.

    Returns:
        dict[str, np.ndarray]: One array per modality, in order: ``rgb``
        (B, H, W, 3) uint8; a metric depth (B, H, W) (a smooth scene with
        holes); other modalities (B, H, W, 3); each of its ``dtypes``
        entry. Without ``preprocess``: normalised float32 (B, 3, H, W).
    """
    rng = np.random.RandomState(seed)
    if not preprocess:
        return {
            name: rng.randn(batch, 3, h, w).astype(np.float32)
            for name in spec.modalities
        }
    out = {}
    for name in spec.modalities:
        enc = spec.encoding(name)
        dtype_name = dtypes[name]
        dtype = INPUT_DTYPES[dtype_name]
        if not enc.is_metric:
            high = 256 if dtype_name == 'uint8' or enc.encoding == 'rgb' \
                else 10000
            out[name] = rng.randint(0, high, (batch, h, w, 3)).astype(dtype)
            continue
        # a smooth scene with holes: values of the stored range
        high = {'uint8': 255, 'uint16': 10000, 'float32': 10000}[dtype_name]
        if enc.encoding == 'clip':
            high = min(high, 2 * enc.range[1])
        yy, xx = np.mgrid[0:h, 0:w]
        base = (0.3 + 0.6 * (yy / max(h - 1, 1)) * (xx / max(w - 1, 1)))
        depth = base[None] * high * rng.uniform(0.8, 1.0, (batch, h, w))
        depth[rng.rand(batch, h, w) < 0.05] = 0
        out[name] = depth.astype(dtype)
    return out


class _Half(nn.Module):
    """Run the network in float16, the pre/post-processing in float32."""

    def __init__(self, wrapper: DeployableSegmentor):
        super().__init__()
        self.wrapper = wrapper
        self.model = wrapper.model.half()

    def forward(self, *frames):
        w = self.wrapper
        x = w.encode(*frames) if w.preprocess else torch.cat(frames, dim=1)
        outs = self.model.branch_logits(x.half())
        outs = [o.float() for o in outs]
        return w.postprocess(outs, x.shape[2:])


def _rename_dims(model_proto, names: Dict[str, str]) -> None:
    """Rename symbolic dims (``s0`` -> ``batch``) everywhere."""
    g = model_proto.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]


def export_onnx(model: nn.Module,
                out: str,
                shape: Tuple[int, int] = (480, 640),
                dynamic: bool = False,
                batch: int = 1,
                opset: int = 18,
                fp16: bool = False,
                preprocess: bool = True,
                branches: bool = False,
                depth_dtype: Optional[str] = None,
                input_dtypes: Optional[Dict[str, str]] = None,
                spec: Optional[PreprocessSpec] = None,
                optimize: bool = True,
                ort_fusions: bool = False) -> ExportInfo:
    """Export ``model`` (eval mode, CPU) as one ONNX graph.

    Args:
        model (nn.Module): A ``MultiModalEncoderDecoder`` from
            :func:`geminifusion_mmseg.apis.init_model` (``cfg`` and
            ``dataset_meta`` are read).
        out (str): Output ``.onnx`` file, written to a temporary file in
            its folder and renamed when export, optimisation and
            ``onnx.checker`` have passed (a failure leaves an existing
            ``out`` as it was); a folder is refused.
        shape (tuple[int, int]): (H, W) of a static graph; the example size
            of a dynamic one.
        dynamic (bool): Dynamic batch, height and width.
        batch (int): Batch of a static graph.
        opset (int): ONNX opset. Defaults to 18.
        fp16 (bool): Network weights and activations in float16 (the
            pre-processing and the outputs stay float32).
        preprocess (bool): Raw-frame inputs (see
            :class:`DeployableSegmentor`); False: normalised float inputs.
        branches (bool): Add ``logits_<branch>`` outputs.
        depth_dtype (str, optional): 'uint16', 'uint8' or 'float32' for
            the ``depth`` input; default 'uint8' for the 'hha' (and
            'image') encoding, else 'uint16'.
        input_dtypes (dict, optional): ``{modality: dtype}`` for any input
            but ``rgb`` (K-modality models, e.g. ``dict(event='uint8')``);
            see :func:`input_dtypes_of` for the defaults.
        spec (PreprocessSpec, optional): Default :func:`preprocess_spec`.
        optimize (bool): Run onnxscript's graph optimiser (constant
            folding, dead-code removal; standard ONNX ops only). Where it
            fails (some dynamic-shape graphs) the unoptimised graph is kept
            with a warning. Defaults to True.
        ort_fusions (bool): Also fuse patterns into ONNX Runtime contrib
            ops (``com.microsoft`` Gelu, MultiHeadAttention, ...): faster
            on ONNX Runtime, but such a file runs on ONNX Runtime only.
            Defaults to False.

    Returns:
        ExportInfo: Paths, shapes and settings of the written model.
    """
    import onnx
    if model.training:
        raise ValueError('export_onnx: the model must be in eval mode')
    spec = spec or preprocess_spec(model)
    dtypes = input_dtypes_of(spec, depth_dtype, input_dtypes)
    h, w = (int(s) for s in shape)
    trace = dynamic_trace_size(model, h, w) if dynamic else (h, w)
    if trace != (h, w):
        print_log(
            f'export_onnx: tracing the dynamic graph at {trace[0]}x'
            f'{trace[1]} instead of {h}x{w} so that every padding branch '
            'of the windowed backbone is in the graph.',
            logger='current')
    wrapper = DeployableSegmentor(model, spec, preprocess, branches).eval()
    module: nn.Module = _Half(wrapper) if fp16 else wrapper
    example_batch = 2 if dynamic else batch
    example = _example_inputs(spec, preprocess, example_batch, *trace, dtypes)
    args = tuple(torch.from_numpy(example[n]) for n in wrapper.input_names)
    kwargs: dict = {}
    if dynamic:
        from torch.export import Dim
        axes = {0: Dim.DYNAMIC, 1: Dim.DYNAMIC, 2: Dim.DYNAMIC}
        if not preprocess:
            axes = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
        # one entry for the wrapper's *frames, one dict per input
        kwargs['dynamic_shapes'] = (tuple(dict(axes) for _ in args), )
    start = time.time()
    # everything is written to a temporary file, renamed when complete
    with atomic_output(out, what='ONNX model') as tmp:
        try:
            with torch.no_grad():
                program = torch.onnx.export(
                    module,
                    args,
                    dynamo=True,
                    # onnxscript's optimiser fails on the dynamic split of the
                    # modality-stacked batch; ONNX Runtime optimises anyway.
                    optimize=False,
                    opset_version=opset,
                    input_names=wrapper.input_names,
                    output_names=wrapper.output_names,
                    verbose=False,
                    **kwargs)
            # the program reads the parameters when saving: before .float()
            program.save(tmp)
        finally:
            if fp16:
                model.float()
        if optimize or ort_fusions:
            _optimize_file(tmp, optimize, ort_fusions)
        seconds = time.time() - start

        proto = onnx.load(tmp)
        if dynamic:
            names = {}
            layout = (1, 2) if preprocess else (2, 3)
            for vi in proto.graph.input:
                dims = vi.type.tensor_type.shape.dim
                for idx, name in zip((0, ) + layout,
                                     ('batch', 'height', 'width')):
                    if dims[idx].dim_param:
                        names.setdefault(dims[idx].dim_param, name)
            _rename_dims(proto, names)
        meta = getattr(model, 'dataset_meta', None) or {}
        cfg = getattr(model, 'cfg', None)
        contract = dict(
            inputs=_contract_inputs(spec, preprocess, dtypes),
            outputs=wrapper.output_names,
            dynamic=dynamic,
            shape=None if dynamic else [batch, h, w],
            example_shape=[h, w],
            trace_shape=list(trace),
            fp16=fp16,
            preprocess=preprocess,
            branches=branches,
            ort_fusions=ort_fusions,
            modality_names=list(wrapper.modality_names),
            config=getattr(cfg, 'filename', None))
        write_onnx_metadata(
            proto,
            dict(
                classes=list(meta.get('classes', [])),
                palette=[list(map(int, p)) for p in meta.get('palette', [])],
                preprocess=spec.to_dict(),
                contract=contract))
        proto.producer_name = 'geminifusion_mmseg'
        onnx.save(proto, tmp)
        onnx.checker.check_model(tmp, full_check=True)
        file_size = os.path.getsize(tmp)
    info = ExportInfo(
        path=out,
        shape=(h, w),
        trace_shape=trace,
        dynamic=dynamic,
        batch=batch,
        opset=opset,
        fp16=fp16,
        preprocess=preprocess,
        branches=branches,
        depth_dtype=dtypes.get('depth'),
        input_dtypes=dtypes,
        input_names=wrapper.input_names,
        output_names=wrapper.output_names,
        seconds=seconds,
        file_size=file_size)
    print_log(
        f'export_onnx: wrote {out} ({info.file_size / 2**20:.1f} MiB, '
        f'{seconds:.1f} s); onnx.checker passed.',
        logger='current')
    return info


def _optimize_file(path: str, optimize: bool, ort_fusions: bool) -> None:
    """Rewrite ``path`` with onnxscript's optimiser / ORT fusions."""
    import onnx_ir as ir
    import onnxscript.optimizer
    model = ir.load(path)
    if optimize:
        try:
            onnxscript.optimizer.optimize_ir(model)
        except Exception as e:  # keep the valid unoptimised graph
            print_log(
                f'export_onnx: onnxscript optimiser failed ({type(e).__name__}'
                f': {str(e)[:200]}); keeping the unoptimised graph (ONNX '
                'Runtime optimises it when loading).',
                logger='current',
                level=logging.WARNING)
            model = ir.load(path)
    if ort_fusions:
        from onnxscript.rewriter.ort_fusions import optimize_for_ort
        model, stats = optimize_for_ort(model)
        fused = {k: v for k, v in stats.items() if v}
        print_log(
            f'export_onnx: ONNX Runtime fusions {fused}', logger='current')
    ir.save(model, path)


def _contract_inputs(spec: PreprocessSpec, preprocess: bool,
                     dtypes: Dict[str, str]) -> Dict[str, dict]:
    """The graph's inputs for the metadata: dtype, layout and a note per
    modality, in input order."""
    if not preprocess:
        return {
            name:
            dict(
                dtype='float32',
                layout='B,3,H,W',
                note='normalised (x - mean) / std, RGB order'
                if name == 'rgb' else 'encoded and normalised')
            for name in spec.modalities
        }
    out = {}
    for name in spec.modalities:
        if name == 'rgb':
            out[name] = dict(dtype='uint8', layout='B,H,W,3', note='RGB order')
            continue
        layout = 'B,H,W' if spec.channels(name) == 1 else 'B,H,W,3'
        out[name] = dict(
            dtype=dtypes[name],
            layout=layout,
            note=f'as stored; encoding {spec.encoding(name).encoding!r} '
            'applied in the graph')
    return out


def default_verify_sizes(model: nn.Module,
                         contract: dict) -> List[Tuple[int, int, int]]:
    """(B, H, W) checked by default: the static shape; for a dynamic
    graph the trace size at batch 2, the requested example size (if it
    differs) and a size where a windowed backbone pads nowhere."""
    if not contract['dynamic']:
        return [tuple(contract['shape'])]
    th, tw = contract['trace_shape']
    eh, ew = contract['example_shape']
    sizes = [(2, th, tw)]
    if (eh, ew) != (th, tw):
        sizes.append((1, eh, ew))
    ah, aw = aligned_size(model, eh, ew)
    if (ah, aw) not in [(s[1], s[2]) for s in sizes]:
        sizes.append((1, ah, aw))
    return sizes


@dataclass
class ParityReport:
    """ONNX Runtime vs PyTorch on the same inputs, per checked size."""
    rows: List[dict] = field(default_factory=list)
    tolerance: Tuple[float, float] = FP32_TOLERANCE

    @property
    def max_rel_error(self) -> float:
        return max(r['max_rel_error'] for r in self.rows)

    @property
    def min_agreement(self) -> float:
        return min(r['agreement'] for r in self.rows)

    @property
    def passed(self) -> bool:
        return all(r['passed'] for r in self.rows)

    def format(self) -> str:
        """One line per checked size."""
        lines = []
        for r in self.rows:
            lines.append(f"{'PASS' if r['passed'] else 'FAIL'} {r['size']}: "
                         f"max rel error {r['max_rel_error']:.2e} "
                         f"(limit {self.tolerance[0]:.0e}), argmax agreement "
                         f"{100 * r['agreement']:.3f}% (limit "
                         f"{100 * self.tolerance[1]:.1f}%)")
        return '\n'.join(lines)


def verify_onnx(path: str,
                model: nn.Module,
                sizes: Optional[Sequence[Tuple[int, int, int]]] = None,
                tolerance: Optional[Tuple[float, float]] = None,
                raise_on_failure: bool = True,
                providers: Optional[Sequence[str]] = None) -> ParityReport:
    """Run ONNX Runtime and PyTorch on the same random inputs and compare.

    The error is ``max |logits_ort - logits_pt| / max |logits_pt|`` over
    every output logit tensor (the fused one and, if exported, the
    branches'); the agreement is the fraction of pixels whose ``pred``
    equals PyTorch's argmax.

    Args:
        path (str): An exported model (its metadata gives the settings).
        model (nn.Module): The PyTorch model it was exported from.
        sizes (list[tuple[int, int, int]], optional): (B, H, W) to check;
            default: the static shape, or for a dynamic graph the export
            size with batch 2 plus a size of another padding pattern.
        tolerance (tuple[float, float], optional): (max relative error,
            min agreement); default :data:`FP32_TOLERANCE` or, for fp16
            graphs, :data:`FP16_TOLERANCE`.
        raise_on_failure (bool): Raise ``RuntimeError`` on a failure.
        providers (list[str], optional): ONNX Runtime providers; default
            CPU.

    Returns:
        ParityReport: One row per size.
    """
    import onnxruntime as ort

    meta = read_onnx_metadata(path)
    contract = meta['contract']
    spec = PreprocessSpec.from_dict(meta['preprocess'])
    tolerance = tolerance or (FP16_TOLERANCE
                              if contract['fp16'] else FP32_TOLERANCE)
    preprocess = contract['preprocess']
    # the reference resizes with F.interpolate, as the segmentor does
    wrapper = DeployableSegmentor(
        model, spec, preprocess, contract['branches'],
        matmul_bicubic=False).eval()
    if sizes is None:
        sizes = default_verify_sizes(model, contract)
    dtypes = {
        name: contract['inputs'][name]['dtype']
        for name in spec.modalities
    }
    session = ort.InferenceSession(
        path, providers=list(providers or ['CPUExecutionProvider']))
    report = ParityReport(tolerance=tolerance)
    for i, (b, h, w) in enumerate(sizes):
        feeds = _example_inputs(spec, preprocess, b, h, w, dtypes, seed=1 + i)
        with torch.no_grad():
            ref = [
                t.numpy() for t in wrapper(
                    *[torch.from_numpy(feeds[n]) for n in spec.modalities])
            ]
        got = session.run(None, feeds)
        logit_idx = [0] + list(range(2, len(ref)))
        rel = max(
            float(np.abs(got[j] - ref[j]).max()) /
            max(float(np.abs(ref[j]).max()), 1e-12) for j in logit_idx)
        agree = float((got[1] == ref[1]).mean())
        ok = rel <= tolerance[0] and agree >= tolerance[1]
        report.rows.append(
            dict(
                size=f'{b}x{h}x{w}',
                max_rel_error=rel,
                agreement=agree,
                passed=ok))
    msg = f'verify_onnx: {path}\n{report.format()}'
    print_log(
        msg,
        logger='current',
        level=logging.INFO if report.passed else logging.ERROR)
    if raise_on_failure and not report.passed:
        raise RuntimeError(f'ONNX Runtime / PyTorch parity failed for {path}'
                           f':\n{report.format()}')
    return report

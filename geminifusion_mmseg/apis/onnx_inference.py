"""Run an exported ONNX model (``tools/deployment/pytorch2onnx.py``) with
ONNX Runtime, with the pre/post-processing and return type of
:func:`~geminifusion_mmseg.apis.inference_model`.

.. code-block:: python

    from geminifusion_mmseg.apis import init_onnx_model, inference_onnx_model

    model = init_onnx_model('geminifusion_mit-b3.onnx')   # CPU by default
    result = inference_onnx_model(model, 'rgb.png', 'depth.png')
    result.pred_sem_seg.data  # (1, H, W) class ids at the RGB image's size

    # a K-modality model (e.g. DeLiVER RGB-D-E-L): the dict of inference_model
    result = inference_onnx_model(
        init_onnx_model('rgbdel.onnx'),
        dict(rgb='a_rgb.png', depth='a_depth.png', event='a_event.png',
             lidar='a_lidar.png'))

The graph encodes and normalises the frames itself; this module only reads
files, checks and batches arrays, and - where the config's test pipeline
resizes (e.g. ``ResizeShortSideToMultiple`` for SUN RGB-D's mixed sizes)
or a static graph has another size - resizes the frames on the host and
the logits back to the RGB input's size.

Reading, checking and batching are :mod:`geminifusion_mmseg.apis.inputs`'
(the PyTorch API's). The graph has one input per modality and takes ONE
size for all of them. A modality that the config's loader resizes to the
RGB size (``resize_to_rgb``, e.g. DeLiVER's event maps) is resized so
(nearest) on the host. A depth map (or other modality) of another size than
its RGB image is brought to the graph's size on the host by the policy
recorded at export (the test dataset's ``size_mismatch``): ``'crop'``
centre-crops it to the RGB size (as PyTorch); ``'stretch'`` resizes it from
its own size straight to the size the graph runs at (bilinear), rounded to
the graph's depth dtype -- PyTorch keeps the stretched depth in float and,
where the test pipeline resizes, resizes it in the protocol's two steps;
``'error'`` (and models exported before the policy was recorded) keeps
:func:`~geminifusion_mmseg.apis.inference_model`'s rule: same aspect ratio
resized (nearest), another one refused.
"""
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ..datasets.transforms.interpolation import nearest_resize
from ..datasets.transforms.loading import LoadRGBDImageFromFile
from ..datasets.transforms.modality_encoding import ModalityEncoding
from ..datasets.transforms.multimodal import LoadMultiModalImageFromFile
from ..datasets.transforms.size_mismatch import (check_size_mismatch,
                                                 match_rgb_size)
from ..deployment.metadata import read_onnx_metadata
from ..deployment.wrapper import PreprocessSpec
from .inputs import (InputType, batches_by_shape, check_depth_array,
                     check_modality_array, check_rgb_array, check_sample_keys,
                     is_path, pair_inputs, prepare_pair, read_modalities,
                     split_samples)

__all__ = [
    'read_onnx_metadata', 'ONNXSegmentor', 'init_onnx_model',
    'inference_onnx_model'
]

_NP_DTYPES = {
    'tensor(uint8)': np.uint8,
    'tensor(uint16)': np.uint16,
    'tensor(float)': np.float32,
    'tensor(float16)': np.float16,
}


class ONNXSegmentor:
    """An ONNX Runtime session with the model's metadata.

    Args:
        path (str): The ``.onnx`` file.
        providers (list[str], optional): ONNX Runtime execution providers;
            default ``['CPUExecutionProvider']``.
        session_options (onnxruntime.SessionOptions, optional): E.g. thread
            counts.

    Attributes:
        dataset_meta (dict): ``classes`` and ``palette`` (as
            ``init_model``'s ``model.dataset_meta``).
        preprocess (dict): The baked-in pre-processing settings (the
            metadata's ``preprocess``; ``spec`` is the same as a
            :class:`~geminifusion_mmseg.deployment.PreprocessSpec`).
        contract (dict): Inputs, outputs, static shape, ...
        modalities (tuple[str]): The graph's inputs, RGB first.
    """

    def __init__(self,
                 path: str,
                 providers: Optional[Sequence[str]] = None,
                 session_options=None) -> None:
        import onnxruntime as ort
        meta = read_onnx_metadata(path)
        self.path = path
        self.preprocess = meta['preprocess']
        self.spec = PreprocessSpec.from_dict(self.preprocess)
        self.modalities = tuple(self.spec.modalities)
        self.contract = meta['contract']
        self.dataset_meta = dict(
            classes=tuple(meta['classes']),
            palette=[list(p) for p in meta['palette']])
        self.session = ort.InferenceSession(
            path,
            sess_options=session_options,
            providers=list(providers or ['CPUExecutionProvider']))
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_dtypes = {
            name: _NP_DTYPES.get(i.type, np.float32)
            for name, i in inputs.items()
        }
        self.output_names = [o.name for o in self.session.get_outputs()]
        # reads files exactly as the data sets do
        spec = self.spec
        if spec.multimodal:
            self.file_loader = LoadMultiModalImageFromFile(
                imdecode_backend=spec.imdecode_backend)
        else:
            loader_kwargs = dict(
                depth_encoding=spec.depth_encoding,
                depth_scale=spec.depth_scale,
                imdecode_backend=spec.imdecode_backend)
            if spec.depth_range is not None:
                loader_kwargs['depth_range'] = spec.depth_range
            self.file_loader = LoadRGBDImageFromFile(**loader_kwargs)
        #: what a modality of another size than RGB becomes (host side)
        self.size_mismatch = check_size_mismatch(
            spec.size_mismatch, f'init_onnx_model: {path} metadata')
        self._resize = None
        rp = spec.resize_pipeline
        if rp:
            from mmseg.registry import TRANSFORMS

            import geminifusion_mmseg.datasets  # noqa: F401 (registry)
            self._resize = TRANSFORMS.build(dict(rp))

    def __call__(self, *frames: np.ndarray,
                 **named: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the graph on one batch of its exact input contract.

        Args:
            *frames (np.ndarray): One per graph input, in the order of
                :attr:`modalities` (RGB-D: ``rgb`` (B, H, W, 3) uint8,
                ``depth`` (B, H, W) (or (B, H, W, 3) for HHA) of the
                graph's depth dtype).
            **named (np.ndarray): Or the same by modality name.

        Returns:
            dict[str, np.ndarray]: Outputs by name (``logits``, ``pred``,
            maybe ``logits_<branch>``).

        Raises:
            ValueError: Not one array per input, or inputs of different
                (B, H, W): the graph takes one size for all inputs.
        """
        if frames and named:
            raise TypeError(f'{self.path}: give the inputs by position or '
                            'by name, not both')
        feeds = dict(zip(self.modalities, frames)) if frames else named
        if len(frames) > len(self.modalities) or set(feeds) != set(
                self.modalities):
            raise ValueError(f'{self.path}: the graph takes the inputs '
                             f'{list(self.modalities)}, got '
                             f'{len(frames) or sorted(named)}')
        shapes = {n: tuple(np.shape(feeds[n])) for n in self.modalities}
        first = shapes[self.modalities[0]]
        if any(
                len(shape) < 3 or shape[:3] != first[:3]
                for shape in shapes.values()):
            both = 'both' if len(shapes) == 2 else 'all its'
            got = ' and '.join(f'{n} {shape}' for n, shape in shapes.items())
            raise ValueError(
                f'{self.path}: the graph takes one size for {both} inputs, '
                f'got {got} (B, H, W, ...). Bring every modality to the RGB '
                'size first, or call inference_onnx_model, which applies '
                'the exported size_mismatch policy '
                f'({self.size_mismatch!r}) on the host.')
        outs = self.session.run(None, feeds)
        return dict(zip(self.output_names, outs))

    # -- sizes -------------------------------------------------------------
    def model_size(self, h: int, w: int) -> Tuple[int, int]:
        """The (H, W) the graph runs at for an (h, w) input: the config's
        test resize, or a static graph's fixed size."""
        shape = self.contract.get('shape')
        if not self.contract['dynamic'] and shape:
            return int(shape[1]), int(shape[2])
        if self._resize is not None and hasattr(self._resize, 'target_sizes'):
            return tuple(self._resize.target_sizes(h, w)[1])
        return h, w


def init_onnx_model(path: str,
                    device: str = 'cpu',
                    num_threads: Optional[int] = None) -> ONNXSegmentor:
    """Open an exported model with ONNX Runtime.

    Args:
        path (str): The ``.onnx`` file.
        device (str): 'cpu' or 'cuda' / 'cuda:N' (CUDA execution provider,
            with the CPU one as fallback).
        num_threads (int, optional): Intra-op threads (default: ONNX
            Runtime's choice).

    Returns:
        ONNXSegmentor
    """
    import onnxruntime as ort
    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = int(num_threads)
    if device == 'cpu':
        providers = ['CPUExecutionProvider']
    elif device.startswith('cuda'):
        idx = int(device.split(':')[1]) if ':' in device else 0
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise RuntimeError(
                f'init_onnx_model: device={device!r} but this onnxruntime '
                'has no CUDAExecutionProvider (install onnxruntime-gpu)')
        providers = [('CUDAExecutionProvider', dict(device_id=idx)),
                     'CPUExecutionProvider']
    else:
        raise ValueError(f"init_onnx_model: device must be 'cpu' or "
                         f"'cuda[:N]', got {device!r}")
    return ONNXSegmentor(path, providers=providers, session_options=opts)


def _resize_frames(frames: Dict[str, np.ndarray], size: Tuple[int, int],
                   dtypes: Dict[str, type]) -> Dict[str, np.ndarray]:
    """Bilinear resize of one sample's frames to ``size`` (as the test
    pipeline's image resize), each from its own size (a frame of that size
    is kept), rounded back to the graph's input dtypes."""
    h, w = size
    out = {}
    for name, x in frames.items():
        dtype = dtypes[name]
        if x.shape[:2] != (h, w):
            x = cv2.resize(
                x.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                x = np.clip(np.round(x), info.min, info.max)
        out[name] = x.astype(dtype)
    return out


def _to_graph_input(x: np.ndarray, modality: str, enc: ModalityEncoding,
                    channels: int, dtype, name: str) -> np.ndarray:
    """One modality's array (as stored) in its graph input's layout and
    dtype: (H, W) for ``channels`` 1, (H, W, 3) for 3 (grey repeated, a
    4-channel image read as its encoding reads it), the values rounded
    (with a warning if fractional) or refused (out of the dtype's range).
    ``name`` names the input in the errors."""
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if channels == 3:
        if x.ndim == 2:
            if enc.encoding in ('hha', 'rgb'):
                raise ValueError(
                    f'inference_onnx_model: {name} has one channel but the '
                    f"model's {modality} encoding is {enc.encoding!r} (3 "
                    'channels)')
            x = np.repeat(x[..., None], 3, axis=2)
        elif x.shape[2] == 4:
            if enc.encoding not in ('image', 'thermal'):
                raise ValueError(
                    f'inference_onnx_model: {name} has 4 channels, which the '
                    f"model's {modality} encoding {enc.encoding!r} cannot "
                    'read')
            x = np.repeat(x[..., 3:4], 3, axis=2) \
                if enc.encoding == 'thermal' else x[..., :3]
    elif x.ndim == 3:
        if x.shape[2] != 3 or not ((x[..., 0] == x[..., 1]).all() and
                                   (x[..., 0] == x[..., 2]).all()):
            raise ValueError(
                f'inference_onnx_model: {name} has {x.shape[2]} different '
                f"channels; the model's {modality} encoding reads one (use "
                "an 'hha' model for 3-channel encodings)")
        x = x[..., 0]
    if x.dtype == dtype:
        return x
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if np.issubdtype(x.dtype,
                         np.floating) and not np.array_equal(x, np.round(x)):
            flag = '--depth-dtype' if modality == 'depth' else \
                f'--input-dtype {modality}='
            print_log(
                f'inference_onnx_model: {name} has fractional values but '
                f'the graph takes {np.dtype(dtype).name} {modality}; they '
                f'are rounded (export with {flag}float32 to keep them).',
                logger='current',
                level=logging.WARNING)
        if x.min() < info.min or x.max() > info.max:
            raise ValueError(
                f'inference_onnx_model: {name} has values outside the '
                f'{np.dtype(dtype).name} range of the graph input '
                f'[{x.min()}, {x.max()}]')
        x = np.round(x)
    return x.astype(dtype)


def _read_pair(model: ONNXSegmentor, rgb: InputType,
               depth: Optional[InputType],
               tag: str) -> Tuple[Dict[str, np.ndarray], dict]:
    """One RGB-D pair -> its graph frames at the RGB size (a depth of
    another size kept for 'stretch') and its metainfo."""
    results = prepare_pair(rgb, depth, model.file_loader, tag,
                           model.size_mismatch)
    img = check_rgb_array(results['img'], f'rgb{tag}')
    dep = _to_graph_input(
        check_depth_array(results['depth'], f'depth{tag}'), 'depth',
        model.spec.encoding('depth'), model.spec.channels('depth'),
        model.input_dtypes['depth'], f'depth{tag}')
    if model.size_mismatch == 'crop':
        dep, _ = match_rgb_size(
            dep, img.shape[:2], 'crop', 'Depth image',
            f" of {results.get('depth_path', f'depth{tag}')}",
            f" of {results.get('img_path', f'rgb{tag}')}")
    meta = {k: results[k] for k in ('img_path', 'depth_path') if k in results}
    return dict(rgb=img, depth=dep), meta


def _read_modalities(model: ONNXSegmentor, sample: Dict[str, InputType],
                     tag: str) -> Tuple[Dict[str, np.ndarray], dict]:
    """One K-modality sample -> its graph frames at the RGB size (a
    modality of another size kept for 'stretch') and its metainfo."""
    spec = model.spec
    results = read_modalities(sample, model.modalities, model.file_loader, tag,
                              model.size_mismatch)
    img = check_rgb_array(results['img'], f'rgb{tag}')
    size = tuple(img.shape[:2])
    rgb_source = f" of {results.get('img_path', f'rgb{tag}')}"
    frames = dict(rgb=img)
    for name in model.modalities[1:]:
        value = sample[name]
        source = os.fspath(value) if is_path(value) else f'{name}{tag}'
        x = _to_graph_input(
            check_modality_array(results['modality_arrays'][name],
                                 f'{name}{tag}'), name, spec.encoding(name),
            spec.channels(name), model.input_dtypes[name], f'{name}{tag}')
        if x.shape[:2] != size and name in spec.resize_to_rgb:
            x = nearest_resize(x, size)
        elif x.shape[:2] != size and model.size_mismatch != 'stretch':
            x, _ = match_rgb_size(
                x, size, model.size_mismatch, f'{name} image', f' of {source}',
                rgb_source,
                ' (Or list the modality in resize_to_rgb to resize it at '
                'load, nearest.)')
        frames[name] = x
    meta = {'img_path': results['img_path']} if 'img_path' in results else {}
    return frames, meta


def inference_onnx_model(
    model: ONNXSegmentor,
    rgb: Union[InputType, Sequence[InputType], Dict[str, InputType],
               Sequence[Dict[str, InputType]]],
    depth: Union[None, InputType, Sequence[InputType]] = None
) -> Union[SegDataSample, List[SegDataSample]]:
    """Segment one sample, or a list of samples, with an ONNX model.

    Inputs and outputs as :func:`~geminifusion_mmseg.apis.inference_model`:
    an RGB-D pair (``rgb``, ``depth``) or two lists of them; or, for any
    model (K-modality ones such as the DeLiVER RGB-D-E-L), ONE dict
    ``{modality: file path or array}`` with exactly the graph's modalities
    (or a list of them). Files are read as the data sets read them; arrays
    are the values as stored (``rgb`` (H, W, 3) uint8 in RGB order; depth
    (H, W) / (H, W, 1), or (H, W, 3) for HHA; other modalities (H, W),
    (H, W, 1), (H, W, 3) or (H, W, 4)).

    Where the graph runs at another size than the input (the config's test
    resize, or a static graph), the frames are resized on the host
    (bilinear, rounded to the graph's input dtypes) and the logits resized
    back with the config's ``resize_mode``: exact parity with
    ``inference_model`` holds when no resize is needed (e.g. 480x640
    NYUDv2 frames, or any size with a dynamic MiT/Swin graph whose config
    has no test resize). A modality of another size than its RGB image
    follows the config's ``resize_to_rgb`` or the recorded
    ``size_mismatch`` (module doc): ``'crop'`` keeps that parity,
    ``'stretch'`` is close to it (the stretched frame is rounded to the
    graph's input dtype).

    Returns:
        SegDataSample | list[SegDataSample]: ``seg_logits`` (K, H, W),
        ``pred_sem_seg`` (1, H, W) (fused), and for graphs exported with
        ``--branches`` ``pred_sem_seg_<branch>``; at the RGB input's size.
    """
    if not isinstance(model, ONNXSegmentor):
        raise TypeError('inference_onnx_model: model must come from '
                        f'init_onnx_model, got {type(model).__name__}')
    if not model.contract.get('preprocess', True):
        raise ValueError(
            f'inference_onnx_model: {model.path} was exported with '
            '--no-preprocess (normalised float inputs); export it without '
            'that flag to run it on frames')
    caller = 'inference_onnx_model'
    samples, is_batch = split_samples(rgb, depth, caller)
    if samples is None:
        rgbs, depths, is_batch = pair_inputs(rgb, depth, caller)
        samples = [dict(rgb=r, depth=d) for r, d in zip(rgbs, depths)]
    if not samples:
        return []
    rgbd = not model.spec.multimodal
    static_batch = None
    if not model.contract['dynamic'] and model.contract.get('shape'):
        static_batch = int(model.contract['shape'][0])

    items = []
    for i, sample in enumerate(samples):
        tag = f'[{i}]' if is_batch else ''
        check_sample_keys(sample, model.modalities, rgbd, tag, caller)
        if rgbd:
            frames, meta = _read_pair(model, sample['rgb'],
                                      sample.get('depth'), tag)
        else:
            frames, meta = _read_modalities(model, sample, tag)
        size = tuple(frames['rgb'].shape[:2])
        target = tuple(model.model_size(*size))
        if any(x.shape[:2] != target for x in frames.values()):
            sizes = ', '.join(f'{n} {x.shape[0]}x{x.shape[1]}'
                              for n, x in frames.items())
            print_log(
                f'{caller}: input {sizes} runs at {target[0]}x{target[1]} '
                '(resized on the host, logits resized back).',
                logger='current',
                level=logging.DEBUG)
            frames = _resize_frames(frames, target, model.input_dtypes)
        meta.update(ori_shape=size, img_shape=target)
        items.append(({
            n: np.ascontiguousarray(x)
            for n, x in frames.items()
        }, meta))

    outputs: List[Optional[SegDataSample]] = [None] * len(items)
    names = model.contract.get('modality_names', ['rgb', 'depth'])
    mode = model.preprocess.get('resize_mode', 'bilinear')
    align = model.preprocess.get('align_corners', False)
    shapes = [tuple(x.shape for x in frames.values()) for frames, _ in items]
    for idx in batches_by_shape(shapes, static_batch):
        feeds = {
            n: np.stack([items[i][0][n] for i in idx])
            for n in model.modalities
        }
        if static_batch and len(idx) < static_batch:  # fill a static batch
            fill = static_batch - len(idx)
            feeds = {
                n: np.concatenate([x, np.repeat(x[-1:], fill, 0)])
                for n, x in feeds.items()
            }
        outs = model(**feeds)
        for j, i in enumerate(idx):
            outputs[i] = _to_sample(outs, j, items[i][1], names, mode, align)
    return outputs if is_batch else outputs[0]


def _to_sample(outs: Dict[str, np.ndarray], j: int, meta: dict,
               names: Sequence[str], mode: str,
               align_corners: bool) -> SegDataSample:
    """Sample ``j`` of the graph outputs as a SegDataSample at
    ``meta['ori_shape']``."""
    ori = tuple(meta['ori_shape'])
    sample = SegDataSample(metainfo=dict(meta))

    def at_size(logits: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(logits)).float()
        if tuple(t.shape[-2:]) != ori:
            kwargs = dict(size=ori, mode=mode)
            if mode != 'nearest':
                kwargs['align_corners'] = align_corners
            t = F.interpolate(t[None], **kwargs)[0]
        return t

    logits = at_size(outs['logits'][j])
    if tuple(outs['logits'].shape[-2:]) == ori:
        pred = torch.from_numpy(outs['pred'][j].astype(np.int64))
    else:
        pred = logits.argmax(0)
    sample.set_data(
        dict(
            seg_logits=PixelData(data=logits),
            pred_sem_seg=PixelData(data=pred[None])))
    for name in names:
        key = f'logits_{name}'
        if key in outs:
            sample.set_data({
                f'pred_sem_seg_{name}':
                PixelData(data=at_size(outs[key][j]).argmax(0)[None])
            })
    return sample

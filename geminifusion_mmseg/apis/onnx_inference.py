"""Run an exported ONNX model (``tools/deployment/pytorch2onnx.py``) with
ONNX Runtime, with the pre/post-processing and return type of
:func:`~geminifusion_mmseg.apis.inference_model`.

.. code-block:: python

    from geminifusion_mmseg.apis import init_onnx_model, inference_onnx_model

    model = init_onnx_model('geminifusion_mit-b3.onnx')   # CPU by default
    result = inference_onnx_model(model, 'rgb.png', 'depth.png')
    result.pred_sem_seg.data  # (1, H, W) class ids at the RGB image's size

The graph encodes and normalises the frames itself; this module only reads
files, checks and batches arrays, and - where the config's test pipeline
resizes (e.g. ``ResizeShortSideToMultiple`` for SUN RGB-D's mixed sizes)
or a static graph has another size - resizes the frames on the host and
the logits back to the RGB input's size.

The graph takes ONE size for both inputs. A depth map of another size than
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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ..datasets.transforms.loading import LoadRGBDImageFromFile
from ..datasets.transforms.size_mismatch import (check_size_mismatch,
                                                 match_rgb_size)
from ..deployment.metadata import read_onnx_metadata
from .inputs import (InputType, batches_by_shape, check_depth_array,
                     check_rgb_array, pair_inputs, prepare_pair)

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
        preprocess (dict): The baked-in pre-processing settings.
        contract (dict): Inputs, outputs, static shape, ...
    """

    def __init__(self,
                 path: str,
                 providers: Optional[Sequence[str]] = None,
                 session_options=None) -> None:
        import onnxruntime as ort
        meta = read_onnx_metadata(path)
        self.path = path
        self.preprocess = meta['preprocess']
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
        loader_kwargs = dict(
            depth_encoding=self.preprocess['depth_encoding'],
            depth_scale=self.preprocess['depth_scale'],
            imdecode_backend=self.preprocess.get('imdecode_backend', 'cv2'))
        if self.preprocess.get('depth_range') is not None:
            loader_kwargs['depth_range'] = self.preprocess['depth_range']
        # reads files exactly as the data sets do
        self.file_loader = LoadRGBDImageFromFile(**loader_kwargs)
        #: what a depth map of another size than RGB becomes (host side)
        self.size_mismatch = check_size_mismatch(
            self.preprocess.get('size_mismatch', 'error'),
            f'init_onnx_model: {path} metadata')
        self._resize = None
        rp = self.preprocess.get('resize_pipeline')
        if rp:
            from mmseg.registry import TRANSFORMS

            import geminifusion_mmseg.datasets  # noqa: F401 (registry)
            self._resize = TRANSFORMS.build(dict(rp))

    def __call__(self, rgb: np.ndarray,
                 depth: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the graph on one batch of its exact input contract.

        Args:
            rgb (np.ndarray): (B, H, W, 3) uint8.
            depth (np.ndarray): (B, H, W) (or (B, H, W, 3) for HHA) of the
                graph's depth dtype.

        Returns:
            dict[str, np.ndarray]: Outputs by name (``logits``, ``pred``,
            maybe ``logits_<modality>``).

        Raises:
            ValueError: ``rgb`` and ``depth`` of different (B, H, W): the
                graph takes one size for both inputs.
        """
        if np.ndim(rgb) < 3 or tuple(np.shape(rgb)[:3]) != tuple(
                np.shape(depth)[:3]):
            raise ValueError(
                f'{self.path}: the graph takes one size for both inputs, '
                f'got rgb {tuple(np.shape(rgb))} and depth '
                f'{tuple(np.shape(depth))} (B, H, W, ...). Bring the depth '
                'map to the RGB size first, or call inference_onnx_model, '
                "which applies the exported size_mismatch policy "
                f'({self.size_mismatch!r}) on the host.')
        outs = self.session.run(None, {'rgb': rgb, 'depth': depth})
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


def _resize_frames(rgb: np.ndarray, depth: np.ndarray, size: Tuple[int, int],
                   depth_dtype) -> Tuple[np.ndarray, np.ndarray]:
    """Bilinear resize of one pair to ``size`` (as the test pipeline's
    image resize), each frame from its own size (a frame of that size is
    kept), rounded back to the graph's input dtypes."""
    h, w = size
    r, d = rgb, depth
    if r.shape[:2] != (h, w):
        r = cv2.resize(
            rgb.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        r = np.clip(np.round(r), 0, 255).astype(np.uint8)
    if d.shape[:2] != (h, w):
        d = cv2.resize(
            depth.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        if np.issubdtype(depth_dtype, np.integer):
            info = np.iinfo(depth_dtype)
            d = np.clip(np.round(d), info.min, info.max)
    return r, d.astype(depth_dtype)


def _to_depth_input(depth: np.ndarray, hha: bool, dtype,
                    name: str) -> np.ndarray:
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if hha and depth.ndim != 3:
        raise ValueError(f'inference_onnx_model: {name} has one channel but '
                         "the model's depth encoding is 'hha' (3 channels)")
    if not hha and depth.ndim == 3:
        if not ((depth[..., 0] == depth[..., 1]).all() and
                (depth[..., 0] == depth[..., 2]).all()):
            raise ValueError(
                f'inference_onnx_model: {name} has 3 different channels; '
                "the model's depth encoding reads one (use an 'hha' model "
                'for 3-channel encodings)')
        depth = depth[..., 0]
    if depth.dtype == dtype:
        return depth
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if np.issubdtype(depth.dtype, np.floating) and not np.array_equal(
                depth, np.round(depth)):
            print_log(
                f'inference_onnx_model: {name} has fractional values but '
                f'the graph takes {np.dtype(dtype).name} depth; they are '
                'rounded (export with --depth-dtype float32 to keep them).',
                logger='current',
                level=logging.WARNING)
        if depth.min() < info.min or depth.max() > info.max:
            raise ValueError(
                f'inference_onnx_model: {name} has values outside the '
                f'{np.dtype(dtype).name} range of the graph input '
                f'[{depth.min()}, {depth.max()}]')
        depth = np.round(depth)
    return depth.astype(dtype)


def inference_onnx_model(
    model: ONNXSegmentor, rgb: Union[InputType, Sequence[InputType]],
    depth: Union[InputType, Sequence[InputType]]
) -> Union[SegDataSample, List[SegDataSample]]:
    """Segment one RGB-D pair, or a list of pairs, with an ONNX model.

    Inputs and outputs as :func:`~geminifusion_mmseg.apis.inference_model`:
    file paths (read as the data sets read them) or arrays (``rgb`` (H, W,
    3) uint8 in RGB order; ``depth`` as stored, (H, W) / (H, W, 1), or
    (H, W, 3) for HHA), one pair or two lists.

    Where the graph runs at another size than the input (the config's test
    resize, or a static graph), the frames are resized on the host
    (bilinear, rounded to the graph's input dtypes) and the logits resized
    back with the config's ``resize_mode``: exact parity with
    ``inference_model`` holds when no resize is needed (e.g. 480x640
    NYUDv2 frames, or any size with a dynamic MiT/Swin graph whose config
    has no test resize). A depth map of another size than its RGB image
    follows the recorded ``size_mismatch`` (module doc): ``'crop'`` keeps
    that parity, ``'stretch'`` is close to it (the stretched depth is
    rounded to the graph's depth dtype).

    Returns:
        SegDataSample | list[SegDataSample]: ``seg_logits`` (K, H, W),
        ``pred_sem_seg`` (1, H, W) (fused), and for graphs exported with
        ``--branches`` ``pred_sem_seg_<modality>``; at the RGB input's size.
    """
    if not isinstance(model, ONNXSegmentor):
        raise TypeError('inference_onnx_model: model must come from '
                        f'init_onnx_model, got {type(model).__name__}')
    if not model.contract.get('preprocess', True):
        raise ValueError(
            f'inference_onnx_model: {model.path} was exported with '
            '--no-preprocess (normalised float inputs); export it without '
            'that flag to run it on frames')
    rgbs, depths, is_batch = pair_inputs(rgb, depth, 'inference_onnx_model')
    if not rgbs:
        return []
    hha = model.preprocess['depth_encoding'] == 'hha'
    depth_dtype = model.input_dtypes['depth']
    static_batch = None
    if not model.contract['dynamic'] and model.contract.get('shape'):
        static_batch = int(model.contract['shape'][0])

    items = []
    for i, (r, d) in enumerate(zip(rgbs, depths)):
        tag = f'[{i}]' if is_batch else ''
        results = prepare_pair(r, d, model.file_loader, tag,
                               model.size_mismatch)
        img = check_rgb_array(results['img'], f'rgb{tag}')
        dep = _to_depth_input(
            check_depth_array(results['depth'], f'depth{tag}'), hha,
            depth_dtype, f'depth{tag}')
        size = tuple(img.shape[:2])
        if model.size_mismatch == 'crop':
            dep, _ = match_rgb_size(
                dep, size, 'crop', 'Depth image',
                f" of {results.get('depth_path', f'depth{tag}')}",
                f" of {results.get('img_path', f'rgb{tag}')}")
        target = tuple(model.model_size(*size))
        if target != size or dep.shape[:2] != target:
            print_log(
                f'inference_onnx_model: input {size[0]}x{size[1]} (depth '
                f'{dep.shape[0]}x{dep.shape[1]}) runs at '
                f'{target[0]}x{target[1]} (resized on the host, logits '
                'resized back).',
                logger='current',
                level=logging.DEBUG)
            img, dep = _resize_frames(img, dep, target, depth_dtype)
        meta = dict(ori_shape=size, img_shape=tuple(target))
        for key in ('img_path', 'depth_path'):
            if key in results:
                meta[key] = results[key]
        items.append(
            (np.ascontiguousarray(img), np.ascontiguousarray(dep), meta))

    outputs: List[Optional[SegDataSample]] = [None] * len(items)
    names = model.contract.get('modality_names', ['rgb', 'depth'])
    mode = model.preprocess.get('resize_mode', 'bilinear')
    align = model.preprocess.get('align_corners', False)
    for idx in batches_by_shape([img.shape[:2] for img, _, _ in items],
                                static_batch):
        rgb_b = np.stack([items[i][0] for i in idx])
        dep_b = np.stack([items[i][1] for i in idx])
        n = len(idx)
        if static_batch and n < static_batch:  # fill a static batch
            rgb_b = np.concatenate(
                [rgb_b, np.repeat(rgb_b[-1:], static_batch - n, 0)])
            dep_b = np.concatenate(
                [dep_b, np.repeat(dep_b[-1:], static_batch - n, 0)])
        outs = model(rgb_b, dep_b)
        for j, i in enumerate(idx):
            outputs[i] = _to_sample(outs, j, items[i][2], names, mode, align)
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

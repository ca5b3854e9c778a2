"""``init_model`` / ``inference_model`` for RGB-D pairs (mmseg's API, RGB-D).

Channel order of array inputs:

* RGB: ``(H, W, 3)`` uint8 in **RGB** order. ``cv2.imread`` returns BGR:
  pass ``cv2.imread(path)[..., ::-1]`` (or ``mmcv.imread(path,
  channel_order='rgb')``), or simply the file path.
* depth: the values as stored, in the units the model was trained on
  (e.g. 16-bit millimetres for the released NYUDv2 models): ``(H, W)`` or
  ``(H, W, 1)``, any integer or float dtype, read with
  ``cv2.imread(path, cv2.IMREAD_UNCHANGED)``; or ``(H, W, 3)`` for a
  3-channel encoding such as HHA, in RGB order
  (``cv2.imread(path)[..., ::-1]``). The config's depth encoding
  (``LoadRGBDImageFromFile(depth_encoding=...)``) is applied to arrays
  exactly as to files. ``depth=None``: no depth sensor; the model runs
  with depth missing (every pixel "no measurement", see
  ``inference_model``).
"""
import copy
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import print_log
from mmengine.registry import DefaultScope, init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

from ..checkpoints.loading import load_segmentor_checkpoint
from ..datasets.transforms.loading import (LoadRGBDImageFromFile,
                                           read_depth_image,
                                           replace_non_finite)
from ..datasets.transforms.missing import depth_missing_value
from ..datasets.transforms.multimodal import read_image_unchanged
from ..datasets.transforms.resize import nearest_resize
from ..datasets.transforms.size_mismatch import size_mismatch_hint
from ..utils.pipeline_cfg import (find_size_mismatch, find_test_dataset_cfg,
                                  find_test_pipeline, transform_name)
from .precision import check_precision, set_inference_precision

__all__ = [
    'init_model', 'inference_model', 'InferenceInputReader', 'predict_samples'
]

PathType = Union[str, 'os.PathLike[str]']
InputType = Union[PathType, np.ndarray]

#: Relative tolerance on the aspect ratio (W / H) when a depth map of
#: another size is resized to its RGB image.
RATIO_TOLERANCE = 0.01

_FILE_LOADER = 'LoadRGBDImageFromFile'
_ARRAY_LOADER = 'LoadRGBDImageFromNDArray'
_ANNOTATION_LOADERS = ('LoadRGBDAnnotations', 'LoadAnnotations',
                       'LoadMultiModalAnnotations')
_MM_FILE_LOADER = 'LoadMultiModalImageFromFile'
_MM_ARRAY_LOADER = 'LoadMultiModalImageFromNDArray'
_RGB_ONLY_LOADERS = ('LoadImageFromFile', 'LoadImageFromNDArray',
                     'InferencerLoader')
_DEFAULT_PIPELINE = [
    dict(type=_FILE_LOADER, depth_encoding='raw'),
    dict(type='PackSegInputs')
]


# --------------------------------------------------------------- init_model
def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: str = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: bool = True,
               precision: str = 'fp32') -> nn.Module:
    """Build a segmentor from a config and load a checkpoint.

    The checkpoint is read with ``torch.load(weights_only=True)``
    (:func:`~geminifusion_mmseg.utils.load_external_checkpoint`): an
    mmengine checkpoint (``state_dict`` + ``meta``, as written by
    ``tools/train.py`` or ``tools/model_converters/geminifusion2mmseg.py``),
    a bare state dict, or a released GeminiFusion ``.pth.tar``, which is
    converted in memory (convert it once with the tool to skip that).

    Args:
        config (str | Path | Config): Config file or object (not modified).
        checkpoint (str, optional): Checkpoint file. None leaves the weights
            random (a warning is logged).
        device (str): Device of the model. Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides merged into the config.
        strict (bool): Refuse a checkpoint whose keys or shapes do not match
            the model exactly (ValueError naming the keys). False loads what
            matches and logs the rest. Defaults to True.
        precision (str): 'fp32' (default), 'bf16' (autocast; on a CPU
            without BF16 instructions a warning and fp32) or 'bf16-force'
            (bf16 even there, emulated and slow);
            :mod:`geminifusion_mmseg.apis.precision`, docs/inference.md.

    Returns:
        nn.Module: The model in eval mode, with ``cfg`` (the config) and
        ``dataset_meta`` (``classes`` and ``palette``: from the checkpoint's
        ``meta['dataset_meta']`` if it has one, else from the config's test
        dataset class and its ``metainfo``).
    """
    if isinstance(config, (str, Path)):
        config = Config.fromfile(str(config))
    elif isinstance(config, Config):
        config = copy.deepcopy(config)
    else:
        raise TypeError('init_model: config must be a file name or an '
                        f'mmengine Config, got {type(config).__name__}')
    if cfg_options is not None:
        config.merge_from_dict(cfg_options)
    check_precision(precision)
    if config.get('model', None) is None:
        raise ValueError('init_model: the config has no model')
    model_cfg = config.model
    # Weights come from the checkpoint: no ImageNet file is needed.
    if 'pretrained' in model_cfg:
        model_cfg.pretrained = None
    if isinstance(model_cfg.get('backbone', None), dict):
        model_cfg.backbone.init_cfg = None
    model_cfg.train_cfg = None
    init_default_scope(config.get('default_scope', 'mmseg'))

    model = MODELS.build(model_cfg)
    meta: dict = {}
    if checkpoint is not None:
        meta = load_segmentor_checkpoint(model, str(checkpoint), strict,
                                         'init_model')
    else:
        print_log(
            'init_model: no checkpoint given; the model has random '
            'weights.',
            logger='current',
            level=logging.WARNING)
    model.dataset_meta = _dataset_meta(meta, config, model)
    model.cfg = config
    model.to(device)
    model.eval()
    set_inference_precision(model, precision, str(device))
    return model


def _random_palette(n: int) -> List[List[int]]:
    """mmseg's fallback palette: random colours from seed 42."""
    rng = np.random.RandomState(42)
    return rng.randint(0, 255, size=(n, 3)).tolist()


def _dataset_meta(ckpt_meta: dict, cfg: Config, model: nn.Module) -> dict:
    """classes/palette from the checkpoint meta, else the config's dataset.
    """
    meta: Dict[str, Any] = {}
    source = None
    if isinstance(ckpt_meta.get('dataset_meta', None), dict) and \
            ckpt_meta['dataset_meta'].get('classes', None) is not None:
        meta = dict(ckpt_meta['dataset_meta'])
        source = 'the checkpoint'
    elif ckpt_meta.get('CLASSES', None) is not None:  # mmseg 0.x
        meta = dict(
            classes=ckpt_meta['CLASSES'],
            palette=ckpt_meta.get('PALETTE', None))
        source = 'the checkpoint'
    else:
        dataset = find_test_dataset_cfg(cfg)
        if dataset is not None:
            dtype = dataset.get('type', None)
            cls = DATASETS.get(dtype) if isinstance(dtype, str) else dtype
            if cls is not None:
                metainfo = copy.deepcopy(dataset.get('metainfo', None))
                if hasattr(cls, '_load_metainfo'):
                    meta = dict(cls._load_metainfo(metainfo))
                else:  # pragma: no cover - not an mmengine dataset
                    meta = dict(copy.deepcopy(getattr(cls, 'METAINFO', {})))
                    meta.update(metainfo or {})
                if meta.get('classes', None) is not None:
                    source = f'the config ({cls.__name__})'

    num_classes = getattr(
        getattr(model, 'decode_head', None), 'num_classes', None)
    classes = meta.get('classes', None)
    if classes is None:
        n = num_classes or 0
        classes = [f'class {i}' for i in range(n)]
        print_log(
            'init_model: neither the checkpoint nor the config names the '
            f'classes; using {classes[:1] + ["..."] if n > 1 else classes}.',
            logger='current',
            level=logging.WARNING)
    elif num_classes is not None and len(classes) != num_classes:
        print_log(
            f'init_model: {len(classes)} class names from {source} but the '
            f'model predicts {num_classes} classes.',
            logger='current',
            level=logging.WARNING)
    classes = list(classes)
    if num_classes is not None and len(classes) < num_classes:
        classes += [f'class {i}' for i in range(len(classes), num_classes)]
    palette = meta.get('palette', None)
    if palette is None or len(palette) < len(classes):
        palette = list(palette or []) + _random_palette(
            len(classes))[len(palette or []):]
    meta['classes'] = tuple(classes)
    meta['palette'] = [list(map(int, p)) for p in palette]
    return meta


# ---------------------------------------------------------- inference_model
def _pair_inputs(rgb, depth, caller: str) -> Tuple[list, list, bool]:
    """RGB and depth inputs given both singly or both as lists -> (RGB
    list, depth list, whether they were lists); ``caller`` names the API
    in the errors."""
    is_batch = isinstance(rgb, (list, tuple))
    if is_batch != isinstance(depth, (list, tuple)):
        raise TypeError(
            f'{caller}: pass rgb and depth both as single inputs or both as '
            f'lists; got {type(rgb).__name__} and {type(depth).__name__}')
    rgbs = list(rgb) if is_batch else [rgb]
    depths = list(depth) if is_batch else [depth]
    if len(rgbs) != len(depths):
        raise ValueError(f'{caller}: {len(rgbs)} RGB inputs but '
                         f'{len(depths)} depth inputs')
    return rgbs, depths, is_batch


def inference_model(
    model: nn.Module,
    rgb: Union[InputType, Sequence[InputType]],
    depth: Union[None, InputType, Sequence[Optional[InputType]]] = None
) -> Union[SegDataSample, List[SegDataSample]]:
    """Segment one RGB-D pair, or a list of pairs in one call.

    The pair goes through the config's test pipeline (test dataloader's,
    else ``test_pipeline``) without its label loading, with the config's
    ``LoadRGBDImageFromFile`` replaced by its in-memory twin
    ``LoadRGBDImageFromNDArray`` (same depth encoding). Predictions come
    back at the RGB input's size whatever the pipeline resizes to (e.g.
    ``ResizeShortSideToMultiple``).

    Any number of aligned modalities (RGB + X, or the K-modality DeLiVER
    configs, whose test pipeline loads with ``LoadMultiModalImageFromFile``):
    pass ONE dict ``{modality: path or array}`` (or a list of them) with
    exactly the config's modalities, e.g. ``inference_model(model,
    {'rgb': 'a.png', 'depth': 'a_depth.png', 'event': ev, 'lidar': li})``.
    Files are read as the data set reads them; arrays are the values as
    stored (RGB: (H, W, 3) uint8 in RGB order; others (H, W), (H, W, 1),
    (H, W, 3) or (H, W, 4)) and go through the config's per-modality
    encodings. For RGB-D configs ``{'rgb': ..., 'depth': ...}`` equals
    ``inference_model(model, rgb, depth)``. The branch predictions are
    ``pred_sem_seg_<name>`` for the model's two stream names
    (``model.modality_names``, e.g. 'rgb' and 'fused').

    Args:
        model (nn.Module): From :func:`init_model` (needs ``model.cfg``).
        rgb: A file path, or an (H, W, 3) **uint8 array in RGB order**
            (``cv2.imread`` gives BGR: use ``cv2.imread(p)[..., ::-1]``);
            or a list of them.
        depth: A file path (read unchanged, as the data sets read depth), or
            an array of stored values in the model's training units:
            (H, W) / (H, W, 1) any integer or float dtype, or (H, W, 3) for
            HHA-like encodings (RGB order); or a list of them, one per
            ``rgb``. A depth map of another size follows the
            ``size_mismatch`` of the config's test dataset, as the data set
            would read it: ``'stretch'`` (the NYUDv2 zoo configs: resized
            from its own size onto the size the RGB image gets, as the
            release) or ``'crop'`` (centre crop to the RGB size); with
            ``'error'`` (the default) a depth map of the same aspect ratio
            (within 1%) is resized to the RGB size (nearest neighbour) with
            a logged warning, another aspect ratio is a ValueError.
            None (or None in the list): no depth sensor; the pair runs with
            depth MISSING, every pixel "no measurement" exactly as the
            ``depth_missing`` corruption writes it (a stored 0 through the
            config's depth encoding, i.e. 0 for 'raw'; a black image for
            'hha'). A warning says so; the sample's metainfo gets
            ``depth_missing=True``. See docs/robustness.md for which
            prediction to use then.

    Returns:
        SegDataSample | list[SegDataSample]: A list if ``rgb`` is a list.
        Each holds ``seg_logits`` (K, H, W) and ``pred_sem_seg`` (1, H, W)
        of the fused (ensemble) prediction and, for
        ``MultiModalEncoderDecoder``, ``pred_sem_seg_rgb`` /
        ``pred_sem_seg_depth`` of the branches, at the RGB input's size.
        Pairs whose pipeline outputs have the same size run as one batch.
    """
    if not hasattr(model, 'cfg'):
        raise TypeError('inference_model: the model has no cfg; build it '
                        'with geminifusion_mmseg.apis.init_model')
    if isinstance(rgb, dict) or (isinstance(rgb, (list, tuple)) and rgb
                                 and all(isinstance(x, dict) for x in rgb)):
        if depth is not None:
            raise TypeError('inference_model: with a dict of modalities, '
                            "give depth inside it ({'rgb': ..., 'depth': "
                            '...}), not as a separate argument')
        is_batch = not isinstance(rgb, dict)
        samples = list(rgb) if is_batch else [rgb]
        if not samples:
            return []
        reader = InferenceInputReader(model.cfg)
        reader.warn_missing(samples, is_batch)
        outputs = predict_samples(model, [
            reader(s, f'[{i}]' if is_batch else '')
            for i, s in enumerate(samples)
        ])
        return outputs if is_batch else outputs[0]
    if depth is None and isinstance(rgb, (list, tuple)):
        depth = [None] * len(rgb)
    rgbs, depths, is_batch = _pair_inputs(rgb, depth, 'inference_model')
    if not rgbs:
        return []
    reader = InferenceInputReader(model.cfg, rgbd_only=True)
    samples = [dict(rgb=r, depth=d) for r, d in zip(rgbs, depths)]
    reader.warn_missing(samples, is_batch)
    outputs = predict_samples(model, [
        reader(s, f'[{i}]' if is_batch else '') for i, s in enumerate(samples)
    ])
    return outputs if is_batch else outputs[0]


def predict_samples(model: nn.Module,
                    items: List[dict]) -> List[SegDataSample]:
    """``model.test_step`` on packed samples (from
    :class:`InferenceInputReader`), batching those of one size.

    Args:
        model (nn.Module): The segmentor.
        items (list[dict]): ``inputs`` (C, H', W') tensors and their
            ``data_samples``.

    Returns:
        list[SegDataSample]: One prediction per item, in order.
    """
    groups: Dict[Tuple[int, ...], List[int]] = {}
    for i, data in enumerate(items):
        groups.setdefault(tuple(data['inputs'].shape), []).append(i)
    outputs: List[Optional[SegDataSample]] = [None] * len(items)
    with torch.no_grad():
        for indices in groups.values():
            batch = dict(
                inputs=[items[i]['inputs'] for i in indices],
                data_samples=[items[i]['data_samples'] for i in indices])
            for i, result in zip(indices, model.test_step(batch)):
                outputs[i] = result
    return outputs


class InferenceInputReader:
    """One input sample -> the packed output of the config's test pipeline.

    What :func:`inference_model` and
    :class:`~geminifusion_mmseg.apis.MultiModalSegInferencer` share: the
    test pipeline (label loading dropped, the file loader replaced by its
    in-memory twin), file inputs read as the data set reads them, arrays
    checked, the ``size_mismatch`` policy of the test dataset, and depth
    ``None`` as depth missing (RGB-D configs).

    Args:
        cfg (Config): The model's config.
        rgbd_only (bool): Refuse configs that do not load with
            ``LoadRGBDImageFromFile`` (``inference_model(model, rgb,
            depth)``). Defaults to False.

    Attributes:
        modalities (tuple[str]): The config's modalities, RGB first
            (``('rgb', 'depth')`` for RGB-D configs).
        rgbd (bool): Whether the config is an RGB-D one (depth may be
            None).
    """

    def __init__(self, cfg: Config, rgbd_only: bool = False) -> None:
        names = [transform_name(t) for t in find_test_pipeline(cfg)]
        self.size_mismatch = find_size_mismatch(cfg)
        self.rgbd = (
            rgbd_only or not names or _FILE_LOADER in names
            or _MM_FILE_LOADER not in names)
        scope = cfg.get('default_scope', 'mmseg')
        with DefaultScope.overwrite_default_scope(scope):
            if self.rgbd:
                self.pipeline, self.loader = _build_pipeline(cfg)
                self.modalities: Tuple[str, ...] = ('rgb', 'depth')
                return
            self.pipeline, self.loader = _build_pipeline(
                cfg, _MM_FILE_LOADER, _MM_ARRAY_LOADER)
        modalities = self.loader.modalities
        if modalities is None:
            dataset = find_test_dataset_cfg(cfg) or {}
            modalities = dataset.get('modalities', None)
        if modalities is None:
            raise ValueError('inference_model: the config names no '
                             f'modalities ({_MM_FILE_LOADER}.modalities or '
                             "the test dataset's modalities)")
        self.modalities = tuple(modalities)

    def check_keys(self, sample: Dict[str, Any], tag: str = '') -> None:
        """ValueError unless ``sample`` has exactly the config's
        modalities (RGB-D: 'rgb' and optionally 'depth')."""
        if self.rgbd:
            extra = sorted(set(sample) - {'rgb', 'depth'})
            if 'rgb' not in sample or extra:
                raise ValueError(
                    f'inference_model: this is an RGB-D config; input{tag} '
                    "must have the keys 'rgb' and 'depth' (depth may be "
                    f'None), got {sorted(sample)}')
        elif set(sample) != set(self.modalities):
            raise ValueError(f'inference_model: input{tag} has the '
                             f'modalities {sorted(sample)}; the model needs '
                             f'exactly {list(self.modalities)}')

    def warn_missing(self,
                     samples: Sequence[Dict[str, Any]],
                     is_batch: bool,
                     caller: str = 'inference_model') -> None:
        """Log that RGB-D samples without depth run with depth missing."""
        if not self.rgbd:
            return
        no_depth = [s for s in samples if s.get('depth') is None]
        if not no_depth:
            return
        which = 'the pair' if not is_batch else (
            f'{len(no_depth)} of {len(samples)} pairs')
        print_log(
            f'{caller}: no depth for {which}; running with depth '
            'MISSING (every pixel "no measurement": '
            f'{_missing_depth_description(self.loader)}). See '
            'docs/robustness.md for which prediction to trust without '
            'depth.',
            logger='current',
            level=logging.WARNING)

    def load_rgb(self, value: InputType) -> np.ndarray:
        """The RGB image of an input, (H, W, 3) uint8 in RGB order, as the
        data set reads it (or the checked array)."""
        if _is_path(value):
            return LoadRGBDImageFromFile._load_rgb(self.loader,
                                                   os.fspath(value))
        return _check_rgb_array(value, 'rgb')

    def __call__(self, sample: Dict[str, Any], tag: str = '') -> dict:
        """Read and run the pipeline on one sample.

        Args:
            sample (dict): ``{modality: file path or array}`` with the
                config's modalities (RGB-D: depth may be None).
            tag (str): Names the sample in errors, e.g. ``'[3]'``.

        Returns:
            dict: ``inputs`` (C, H', W') and ``data_samples`` (metainfo
            ``ori_shape`` = the RGB input's size, so predictions come back
            at it; RGB-D: ``depth_missing``, ``img_path``/``depth_path`` of
            file inputs).
        """
        self.check_keys(sample, tag)
        if self.rgbd:
            depth = sample.get('depth')
            results = _prepare_pair(sample['rgb'], depth, self.loader, tag,
                                    self.size_mismatch)
            meta = dict(depth_missing=depth is None)
            for key in ('img_path', 'depth_path'):
                if key in results:
                    meta[key] = results[key]
        else:
            results = _read_modalities(sample, self.modalities, self.loader,
                                       tag, self.size_mismatch)
            meta = {}
        meta['ori_shape'] = tuple(results['img'].shape[:2])
        data = self.pipeline(results)
        data['data_samples'].set_metainfo(meta)
        return data


def _read_modalities(sample: Dict[str, InputType], modalities: Sequence[str],
                     loader, tag: str, size_mismatch: str) -> dict:
    """The results dict of one K-modality input for the in-memory loader:
    files decoded as the config's file loader decodes them, arrays checked
    and taken as stored."""
    results: dict = dict(
        modalities=tuple(modalities),
        modality_arrays={},
        size_mismatch=size_mismatch)
    for name in modalities:
        value = sample[name]
        if name == 'rgb':
            if _is_path(value):
                results['img_path'] = os.fspath(value)
                img = LoadRGBDImageFromFile._load_rgb(loader, os.fspath(value))
            else:
                img = _check_rgb_array(value, f'rgb{tag}')
            results['img'] = img
        elif _is_path(value):
            results['modality_arrays'][name] = read_image_unchanged(
                os.fspath(value), f'{name} image', loader.backend_args,
                loader.imdecode_backend)
        elif isinstance(value, np.ndarray):
            results['modality_arrays'][name] = value
        else:
            raise TypeError(
                f'inference_model: {name}{tag} must be a file path or a '
                f'numpy array, got {type(value).__name__}')
    return results


def _test_pipeline_steps(cfg: Config) -> List[dict]:
    """Copies of the config's test pipeline steps (test dataloader's, else
    ``test_pipeline``; a default RGB-D pipeline if there is none)."""
    steps = find_test_pipeline(cfg)
    if not steps:
        print_log(
            'inference_model: the config has no test pipeline; using '
            f"{_FILE_LOADER}(depth_encoding='raw') + PackSegInputs.",
            logger='current',
            level=logging.WARNING)
        steps = copy.deepcopy(_DEFAULT_PIPELINE)
    return steps


def _build_pipeline(cfg: Config,
                    file_loader: str = _FILE_LOADER,
                    array_loader: str = _ARRAY_LOADER) -> Tuple[Compose, Any]:
    """The test pipeline for in-memory inputs (``file_loader`` replaced by
    its in-memory twin ``array_loader``, label loading dropped), and the
    config's file loader (to read file inputs exactly as the data set
    does)."""
    steps = _test_pipeline_steps(cfg)
    loader_cfg = None
    out = []
    for t in steps:
        name = transform_name(t)
        if name in _ANNOTATION_LOADERS:
            continue
        if name in _RGB_ONLY_LOADERS:
            raise ValueError(
                f'inference_model: the test pipeline loads images with '
                f'{name}, not {file_loader}: not an RGB-D config')
        if name == file_loader:
            loader_cfg = t
            t = dict(t, type=array_loader)
        out.append(t)
    if loader_cfg is None:
        raise ValueError(
            f'inference_model: the test pipeline has no {file_loader}; '
            f'got {[transform_name(t) for t in steps]}')
    return Compose(out), TRANSFORMS.build(loader_cfg)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _check_rgb_array(rgb: Any, name: str) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f'inference_model: {name} must be a file path or a '
                        f'numpy array, got {type(rgb).__name__}')
    if rgb.dtype != np.uint8:
        raise TypeError(
            f'inference_model: {name} has dtype {rgb.dtype}; RGB arrays '
            'must be uint8 (0..255), in RGB order')
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        hint = ''
        if rgb.ndim == 2:
            hint = ' (a grey image: np.repeat(img[..., None], 3, axis=2))'
        elif rgb.ndim == 3 and rgb.shape[2] == 4:
            hint = ' (drop the alpha channel: img[..., :3])'
        raise ValueError(f'inference_model: {name} has shape {rgb.shape}; '
                         f'expected (H, W, 3) in RGB order{hint}')
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f'inference_model: {name} is empty {rgb.shape}')
    return rgb


def _check_depth_array(depth: Any, name: str) -> np.ndarray:
    if not isinstance(depth, np.ndarray):
        raise TypeError(f'inference_model: {name} must be a file path or a '
                        f'numpy array, got {type(depth).__name__}')
    if depth.dtype == np.bool_ or not (np.issubdtype(depth.dtype, np.integer)
                                       or np.issubdtype(
                                           depth.dtype, np.floating)):
        raise TypeError(f'inference_model: {name} has dtype {depth.dtype}; '
                        'expected an integer or float depth map')
    if not (depth.ndim == 2 or (depth.ndim == 3 and depth.shape[2] in (1, 3))):
        raise ValueError(
            f'inference_model: {name} has shape {depth.shape}; expected '
            '(H, W) or (H, W, 1) (a depth map) or (H, W, 3) (e.g. HHA)')
    if depth.shape[0] == 0 or depth.shape[1] == 0:
        raise ValueError(f'inference_model: {name} is empty {depth.shape}')
    # NaN/inf -> 0 (missing), as the data sets read float depth files
    return replace_non_finite(depth, f'inference_model: {name}', once=False)


def _match_depth_size(depth: np.ndarray, size: Tuple[int, int],
                      depth_name: str, rgb_name: str) -> np.ndarray:
    """Resize ``depth`` to the RGB ``size`` (h, w) if the aspect ratios
    agree within :data:`RATIO_TOLERANCE`, else raise ValueError."""
    dh, dw = depth.shape[:2]
    h, w = size
    if (dh, dw) == (h, w):
        return depth
    ratio = (dw / dh) / (w / h)
    if abs(ratio - 1) > RATIO_TOLERANCE:
        raise ValueError(
            f'inference_model: the depth map {depth_name} is {dh}x{dw} '
            f'(HxW) and the RGB image {rgb_name} is {h}x{w}: different '
            'aspect ratios, so they cannot be aligned by resizing. Pass a '
            'depth map registered to the RGB image. ' +
            size_mismatch_hint("the config's test dataset"))
    print_log(
        f'inference_model: the depth map {depth_name} is {dh}x{dw} (HxW), '
        f'the RGB image {rgb_name} is {h}x{w}; resizing the depth map to '
        f'{h}x{w} (nearest neighbour).',
        logger='current',
        level=logging.WARNING)
    return nearest_resize(depth, (h, w))


def _missing_depth(file_loader: LoadRGBDImageFromFile,
                   size: Tuple[int, int]) -> np.ndarray:
    """A depth map of ``size`` without any measurement, as stored: zeros,
    (H, W) uint16, or (H, W, 3) uint8 for the 'hha' encoding. Through the
    loader's encoding it becomes the encoding's missing value (see
    :func:`~geminifusion_mmseg.datasets.transforms.depth_missing_value`)."""
    if file_loader.depth_encoding == 'hha':
        return np.zeros(tuple(size) + (3, ), np.uint8)
    return np.zeros(tuple(size), np.uint16)


def _missing_depth_description(file_loader: LoadRGBDImageFromFile) -> str:
    value = depth_missing_value(file_loader.depth_encoding,
                                file_loader.depth_scale,
                                file_loader.depth_range)
    return (f"value {value:g} in the {file_loader.depth_encoding!r} "
            'depth encoding')


def _prepare_pair(rgb: InputType, depth: Optional[InputType],
                  file_loader: LoadRGBDImageFromFile, tag: str,
                  size_mismatch: str) -> dict:
    """The results dict of one pair for the in-memory pipeline; a depth of
    another size is kept for the loader's ``size_mismatch`` policy
    ('stretch', 'crop'), or matched by :func:`_match_depth_size`
    ('error')."""
    results: dict = dict(size_mismatch=size_mismatch)
    if _is_path(rgb):
        rgb_name = os.fspath(rgb)
        img = file_loader._load_rgb(rgb_name)
        results['img_path'] = rgb_name
    else:
        rgb_name = f'rgb{tag} (array)'
        img = _check_rgb_array(rgb, f'rgb{tag}')
    if depth is None:
        depth_name = f'depth{tag} (missing)'
        d = _missing_depth(file_loader, img.shape[:2])
    elif _is_path(depth):
        depth_name = os.fspath(depth)
        d = _check_depth_array(
            read_depth_image(depth_name, file_loader.backend_args), depth_name)
        results['depth_path'] = depth_name
    else:
        depth_name = f'depth{tag} (array)'
        d = _check_depth_array(depth, f'depth{tag}')
    results['img'] = img
    if size_mismatch == 'error':
        d = _match_depth_size(d, img.shape[:2], depth_name, rgb_name)
    results['depth'] = d
    return results

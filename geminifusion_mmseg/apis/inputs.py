"""What the inference APIs share: reading, checking and batching inputs.

:func:`~geminifusion_mmseg.apis.inference_model`,
:class:`~geminifusion_mmseg.apis.MultiModalSegInferencer` and
:func:`~geminifusion_mmseg.apis.inference_onnx_model` (PyTorch and ONNX
Runtime) read their inputs here, so that a file, an array, a missing depth
map or a modality of another size means the same thing in each:

* the array checks (:func:`check_rgb_array`, :func:`check_depth_array`,
  :func:`check_modality_array`), each error naming the input;
* reading one sample: an RGB-D pair (:func:`prepare_pair`, with depth
  ``None`` as depth missing and the ``size_mismatch`` rule of
  :func:`match_depth_size`) or a dict of K modalities
  (:func:`read_modalities`), files decoded as the config's loader decodes
  them;
* the config's test pipeline for in-memory inputs and the reader of one
  sample through it (:class:`InferenceInputReader`);
* :func:`batches_by_shape`, the one rule that batches samples: those of
  one input shape run together, in chunks of at most ``batch_size``.
"""
import copy
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmseg.registry import TRANSFORMS

from ..datasets.transforms.image_io import (read_depth_image,
                                            read_image_unchanged,
                                            read_rgb_image)
from ..datasets.transforms.loading import LoadRGBDImageFromFile
from ..datasets.transforms.modality_encoding import replace_non_finite
from ..datasets.transforms.resize import nearest_resize
from ..datasets.transforms.size_mismatch import size_mismatch_hint
from ..utils.pipeline_cfg import (find_size_mismatch, find_test_dataset_cfg,
                                  find_test_pipeline, transform_name)

__all__ = [
    'PathType', 'InputType', 'RATIO_TOLERANCE', 'is_path', 'pair_inputs',
    'check_rgb_array', 'check_depth_array', 'check_modality_array',
    'match_depth_size', 'missing_depth', 'missing_depth_description',
    'read_rgb_file', 'prepare_pair', 'read_modalities', 'build_test_pipeline',
    'split_samples', 'check_sample_keys', 'InferenceInputReader',
    'batches_by_shape'
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


def pair_inputs(rgb, depth, caller: str) -> Tuple[list, list, bool]:
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


def split_samples(inputs: Any, depth: Any,
                  caller: str) -> Tuple[Optional[List[dict]], bool]:
    """The samples of a dict input (``{modality: input}`` or a list of
    them).

    Args:
        inputs: The API's first input argument.
        depth: Its ``depth`` argument (must be None with dicts).
        caller (str): Names the API in the errors.

    Returns:
        tuple: (the list of sample dicts, whether ``inputs`` was a list);
        (None, False) if ``inputs`` is not a dict input (an RGB-D pair).
    """
    if not (isinstance(inputs, dict) or
            (isinstance(inputs, (list, tuple)) and inputs
             and all(isinstance(x, dict) for x in inputs))):
        return None, False
    if depth is not None:
        raise TypeError(f'{caller}: with a dict of modalities, '
                        "give depth inside it ({'rgb': ..., 'depth': "
                        '...}), not as a separate argument')
    is_batch = not isinstance(inputs, dict)
    return (list(inputs) if is_batch else [inputs]), is_batch


def check_sample_keys(sample: Dict[str, Any],
                      modalities: Sequence[str],
                      rgbd: bool,
                      tag: str = '',
                      caller: str = 'inference_model') -> None:
    """ValueError unless ``sample`` has exactly ``modalities`` (``rgbd``:
    'rgb' and optionally 'depth', which may be None).

    Args:
        sample (dict): ``{modality: input}``.
        modalities (Sequence[str]): The model's modalities.
        rgbd (bool): An RGB-D model (depth may be missing).
        tag (str): Names the sample in the errors, e.g. ``'[3]'``.
        caller (str): Names the API in the errors.
    """
    if rgbd:
        extra = sorted(set(sample) - {'rgb', 'depth'})
        if 'rgb' not in sample or extra:
            raise ValueError(
                f'{caller}: this is an RGB-D config; input{tag} '
                "must have the keys 'rgb' and 'depth' (depth may be "
                f'None), got {sorted(sample)}')
    elif set(sample) != set(modalities):
        raise ValueError(f'{caller}: input{tag} has the '
                         f'modalities {sorted(sample)}; the model needs '
                         f'exactly {list(modalities)}')


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
                self.pipeline, self.loader = build_test_pipeline(cfg)
                self.modalities: Tuple[str, ...] = ('rgb', 'depth')
                return
            self.pipeline, self.loader = build_test_pipeline(
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
        check_sample_keys(sample, self.modalities, self.rgbd, tag)

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
            f'{missing_depth_description(self.loader)}). See '
            'docs/robustness.md for which prediction to trust without '
            'depth.',
            logger='current',
            level=logging.WARNING)

    def load_rgb(self, value: InputType) -> np.ndarray:
        """The RGB image of an input, (H, W, 3) uint8 in RGB order, as the
        data set reads it (or the checked array)."""
        if is_path(value):
            return read_rgb_file(self.loader, os.fspath(value))
        return check_rgb_array(value, 'rgb')

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
            results = prepare_pair(sample['rgb'], depth, self.loader, tag,
                                   self.size_mismatch)
            meta = dict(depth_missing=depth is None)
            for key in ('img_path', 'depth_path'):
                if key in results:
                    meta[key] = results[key]
        else:
            results = read_modalities(sample, self.modalities, self.loader,
                                      tag, self.size_mismatch)
            meta = {}
        meta['ori_shape'] = tuple(results['img'].shape[:2])
        data = self.pipeline(results)
        data['data_samples'].set_metainfo(meta)
        return data


def read_modalities(sample: Dict[str, InputType], modalities: Sequence[str],
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
            if is_path(value):
                results['img_path'] = os.fspath(value)
                img = read_rgb_file(loader, os.fspath(value))
            else:
                img = check_rgb_array(value, f'rgb{tag}')
            results['img'] = img
        elif is_path(value):
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


def build_test_pipeline(
        cfg: Config,
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


def is_path(x: Any) -> bool:
    """Whether an input is a file path (``str`` or ``os.PathLike``)."""
    return isinstance(x, (str, os.PathLike))


def read_rgb_file(loader, path: str) -> np.ndarray:
    """An RGB file decoded as the config's loader decodes it.

    Args:
        loader: The config's file loader (``LoadRGBDImageFromFile`` or
            ``LoadMultiModalImageFromFile``: its ``imdecode_backend`` and
            ``backend_args``).
        path (str): The file.

    Returns:
        np.ndarray: (H, W, 3) uint8 in RGB order.
    """
    return read_rgb_image(path, loader.imdecode_backend, loader.backend_args)


def check_rgb_array(rgb: Any, name: str) -> np.ndarray:
    """An RGB input array, checked: (H, W, 3) uint8, non-empty.

    Args:
        rgb: The input (anything; not an array is a TypeError).
        name (str): Names it in the errors (e.g. ``'rgb[3]'``).

    Returns:
        np.ndarray: ``rgb``.
    """
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


def _check_numeric_array(value: Any, name: str, channels: Tuple[int, ...],
                         values: str, shapes: str) -> np.ndarray:
    """``value`` checked as a non-empty (H, W) or (H, W, C) integer or float
    array, C in ``channels``; NaN/inf become 0 (missing). ``values`` and
    ``shapes`` describe what is expected in the TypeError / ValueError."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f'inference_model: {name} must be a file path or a '
                        f'numpy array, got {type(value).__name__}')
    if value.dtype == np.bool_ or not (np.issubdtype(value.dtype, np.integer)
                                       or np.issubdtype(
                                           value.dtype, np.floating)):
        raise TypeError(f'inference_model: {name} has dtype {value.dtype}; '
                        f'expected {values}')
    if not (value.ndim == 2 or
            (value.ndim == 3 and value.shape[2] in channels)):
        raise ValueError(f'inference_model: {name} has shape {value.shape}; '
                         f'expected {shapes}')
    if value.shape[0] == 0 or value.shape[1] == 0:
        raise ValueError(f'inference_model: {name} is empty {value.shape}')
    return replace_non_finite(value, f'inference_model: {name}', once=False)


def check_depth_array(depth: Any, name: str) -> np.ndarray:
    """A depth input array, checked: (H, W), (H, W, 1) or (H, W, 3),
    integer or float, non-empty; NaN/inf become 0 (missing), as the data
    sets read float depth files.

    Args:
        depth: The input (anything; not an array is a TypeError).
        name (str): Names it in the errors.

    Returns:
        np.ndarray: ``depth`` (a copy where non-finite values were
        replaced).
    """
    return _check_numeric_array(
        depth, name, (1, 3), 'an integer or float depth map',
        '(H, W) or (H, W, 1) (a depth map) or (H, W, 3) (e.g. HHA)')


def check_modality_array(value: Any, name: str) -> np.ndarray:
    """An array of a modality other than RGB, checked: (H, W) or (H, W, C)
    with C = 1, 3 or 4 (RGB(A) order), integer or float, non-empty; NaN/inf
    become 0 (no measurement).

    Args:
        value: The input (anything; not an array is a TypeError).
        name (str): Names it in the errors (e.g. ``'event[2]'``).

    Returns:
        np.ndarray: ``value`` (a copy where non-finite values were
        replaced).
    """
    return _check_numeric_array(value, name, (1, 3, 4),
                                'integer or float values',
                                '(H, W) or (H, W, C) with C = 1, 3 or 4')


def match_depth_size(depth: np.ndarray, size: Tuple[int, int], depth_name: str,
                     rgb_name: str) -> np.ndarray:
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


def missing_depth(file_loader: LoadRGBDImageFromFile,
                  size: Tuple[int, int]) -> np.ndarray:
    """A depth map of ``size`` without any measurement, as stored: zeros,
    (H, W) uint16, or (H, W, 3) uint8 for the 'hha' encoding. Through the
    loader's encoding it becomes the encoding's missing value
    (:meth:`.ModalityEncoding.missing_value`)."""
    if file_loader.modality_encoding('depth').encoding == 'hha':
        return np.zeros(tuple(size) + (3, ), np.uint8)
    return np.zeros(tuple(size), np.uint16)


def missing_depth_description(file_loader: LoadRGBDImageFromFile) -> str:
    """How "no depth" is encoded by ``file_loader``, for the warnings."""
    encoding = file_loader.modality_encoding('depth')
    return (f'value {encoding.missing_value():g} in the '
            f'{encoding.encoding!r} depth encoding')


def prepare_pair(rgb: InputType, depth: Optional[InputType],
                 file_loader: LoadRGBDImageFromFile, tag: str,
                 size_mismatch: str) -> dict:
    """The results dict of one pair for the in-memory pipeline; a depth of
    another size is kept for the loader's ``size_mismatch`` policy
    ('stretch', 'crop'), or matched by :func:`match_depth_size`
    ('error')."""
    results: dict = dict(size_mismatch=size_mismatch)
    if is_path(rgb):
        rgb_name = os.fspath(rgb)
        img = read_rgb_file(file_loader, rgb_name)
        results['img_path'] = rgb_name
    else:
        rgb_name = f'rgb{tag} (array)'
        img = check_rgb_array(rgb, f'rgb{tag}')
    if depth is None:
        depth_name = f'depth{tag} (missing)'
        d = missing_depth(file_loader, img.shape[:2])
    elif is_path(depth):
        depth_name = os.fspath(depth)
        d = check_depth_array(
            read_depth_image(depth_name, file_loader.backend_args), depth_name)
        results['depth_path'] = depth_name
    else:
        depth_name = f'depth{tag} (array)'
        d = check_depth_array(depth, f'depth{tag}')
    results['img'] = img
    if size_mismatch == 'error':
        d = match_depth_size(d, img.shape[:2], depth_name, rgb_name)
    results['depth'] = d
    return results


def batches_by_shape(shapes: Sequence[Any],
                     batch_size: Optional[int] = None) -> List[List[int]]:
    """The one batching rule of the inference APIs: samples of one input
    shape run together.

    Args:
        shapes (list): One hashable shape per sample (e.g. the (C, H, W) of
            its network input, or the shapes of its graph inputs).
        batch_size (int, optional): Most samples per batch (a static ONNX
            graph's batch); None: a whole group.

    Returns:
        list[list[int]]: Sample indices per batch; groups in the order of
        their first sample, indices in input order.
    """
    groups: Dict[Any, List[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(i)
    batches = []
    for indices in groups.values():
        chunk = batch_size or len(indices)
        batches += [
            indices[start:start + chunk]
            for start in range(0, len(indices), chunk)
        ]
    return batches

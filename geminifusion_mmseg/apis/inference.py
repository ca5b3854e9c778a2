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
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

from ..checkpoints.loading import load_segmentor_checkpoint
from ..utils.pipeline_cfg import find_test_dataset_cfg
from .inputs import (InferenceInputReader, InputType, batches_by_shape,
                     pair_inputs, split_samples)
from .precision import check_precision, set_inference_precision

__all__ = [
    'init_model', 'inference_model', 'InferenceInputReader', 'predict_samples'
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
    samples, is_batch = split_samples(rgb, depth, 'inference_model')
    if samples is not None:
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
    rgbs, depths, is_batch = pair_inputs(rgb, depth, 'inference_model')
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
    outputs: List[Optional[SegDataSample]] = [None] * len(items)
    shapes = [tuple(data['inputs'].shape) for data in items]
    with torch.no_grad():
        for indices in batches_by_shape(shapes):
            batch = dict(
                inputs=[items[i]['inputs'] for i in indices],
                data_samples=[items[i]['data_samples'] for i in indices])
            for i, result in zip(indices, model.test_step(batch)):
                outputs[i] = result
    return outputs

"""A segmentor as one traceable graph: sensor frames in, logits and class
ids out.

:class:`DeployableSegmentor` wraps a :class:`MultiModalEncoderDecoder`
through its public interface only (``data_preprocessor`` settings,
``branch_logits``, ``align_corners``, ``test_cfg``), so the backbones can
change their module layout without touching the export.

What the graph computes (whole-image inference at the input size)::

    rgb   uint8 (B, H, W, 3), RGB order ----------.
                                                    > (B, 6, H, W) float
    depth (B, H, W) as stored  --encode(config)---'       |
          (B, H, W, 3) uint8 for 'hha'              (x - mean) / std
                                                          |
                       backbone + head + ensemble (B, K, H/4, W/4) x (M+1)
                                                          |
                      resize to (H, W) (test_cfg.resize_mode, default
                      bilinear, align_corners of the head; bicubic as
                      two matrix products)
                                                          |
                      logits (B, K, H, W) float32, pred (B, H, W) int64

The depth encoding is the config's ``LoadRGBDImageFromFile`` one
(:func:`geminifusion_mmseg.datasets.transforms.loading.encode_depth`):
``raw`` (value as stored), ``scale`` (value * depth_scale), ``clip``
(``(clip(v, lo, hi) - lo) * 255 / (hi - lo)``) or ``hha`` (3-channel image
as is). The geometric resize of the config's test pipeline (e.g.
``ResizeShortSideToMultiple``) is NOT in the graph: the graph runs at the
size it is fed (see :mod:`geminifusion_mmseg.apis.onnx_inference`, which
applies it on the host).
"""
import copy
import logging
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor

from ..utils.pipeline_cfg import (find_size_mismatch, find_test_pipeline,
                                  transform_name)
from .resize import bicubic_resize

__all__ = ['PreprocessSpec', 'preprocess_spec', 'DeployableSegmentor']

_FILE_LOADERS = ('LoadRGBDImageFromFile', 'LoadRGBDImageFromNDArray')
_RESIZE_MODES = ('bilinear', 'bicubic', 'nearest')


@dataclass
class PreprocessSpec:
    """What the graph does to the raw frames before the network.

    Attributes:
        depth_encoding (str): 'raw', 'scale', 'clip' or 'hha'.
        depth_scale (float): Factor of 'scale'.
        depth_range (tuple[float, float] | None): (min, max) of 'clip'.
        mean (list[float]): 6 values, subtracted per channel (rgb, depth).
        std (list[float]): 6 values, divisor per channel.
        bgr_to_rgb (bool): The data preprocessor swaps the first 3 channels
            (never for the zoo configs).
        resize_mode (str): Upsampling of the logits to the input size
            (``test_cfg.resize_mode``, default 'bilinear').
        align_corners (bool): Of that upsampling (the decode head's).
        resize_pipeline (dict | None): The test pipeline's geometric resize
            transform (applied outside the graph), or None.
        imdecode_backend (str): RGB file decoder of the config's loader
            (for reading files outside the graph).
        size_mismatch (str): The test dataset's policy for a depth map of
            another size than RGB ('stretch', 'crop', 'error'), applied
            outside the graph, which takes one size for both inputs.
    """
    depth_encoding: str = 'raw'
    depth_scale: float = 1.0
    depth_range: Optional[Tuple[float, float]] = None
    mean: Tuple[float, ...] = (0., ) * 6
    std: Tuple[float, ...] = (1., ) * 6
    bgr_to_rgb: bool = False
    resize_mode: str = 'bilinear'
    align_corners: bool = False
    resize_pipeline: Optional[dict] = None
    imdecode_backend: str = 'cv2'
    size_mismatch: str = 'error'

    def to_dict(self) -> dict:
        """A JSON-friendly dict (for the ONNX metadata)."""
        d = asdict(self)
        d['mean'] = list(d['mean'])
        d['std'] = list(d['std'])
        if d['depth_range'] is not None:
            d['depth_range'] = list(d['depth_range'])
        return d

    @property
    def depth_channels(self) -> int:
        """Channels of the depth input: 3 for 'hha', else 1 (no axis)."""
        return 3 if self.depth_encoding == 'hha' else 1


def preprocess_spec(model: nn.Module,
                    cfg: Optional[Config] = None) -> PreprocessSpec:
    """Collect the pre/post-processing of ``model`` (built from ``cfg``).

    Args:
        model (nn.Module): A segmentor with a ``SegDataPreProcessor``.
        cfg (Config, optional): Its config (default ``model.cfg``); the depth
            encoding comes from the test pipeline's loader.

    Returns:
        PreprocessSpec: The settings the exported graph bakes in.
    """
    cfg = cfg if cfg is not None else getattr(model, 'cfg', None)
    num_modalities = getattr(
        getattr(model, 'backbone', None), 'num_modalities', 2)
    if num_modalities != 2:
        raise ValueError(
            f'ONNX export takes RGB-D models (2 input modalities: rgb, '
            f'depth); this model has {num_modalities} '
            f'({getattr(model, "modality_names", "?")} streams). Export of '
            'K-modality (DeLiVER) models is not implemented.')
    spec = PreprocessSpec()
    loader = None
    if cfg is not None:
        spec.size_mismatch = find_size_mismatch(cfg)
        for t in find_test_pipeline(cfg):
            name = transform_name(t)
            if name == 'LoadMultiModalImageFromFile':
                raise ValueError(
                    'ONNX export takes RGB-D configs (LoadRGBDImageFromFile); '
                    'this config loads other modalities with '
                    'LoadMultiModalImageFromFile, whose export is not '
                    'implemented.')
            if name in _FILE_LOADERS:
                loader = t
            elif name == 'ResizeShortSideToMultiple':
                spec.resize_pipeline = copy.deepcopy(dict(t))
            elif name in ('Resize', 'RandomResize', 'TestTimeAug'):
                print_log(
                    f'DeployableSegmentor: the test pipeline has {name}, '
                    'which neither the graph nor inference_onnx_model '
                    'applies (only ResizeShortSideToMultiple is applied, '
                    'on the host); feed frames at the size the model should '
                    'see.',
                    logger='current',
                    level=logging.WARNING)
    if loader is None:
        print_log(
            'DeployableSegmentor: no LoadRGBDImageFromFile in the test '
            "pipeline; using depth_encoding='raw'.",
            logger='current',
            level=logging.WARNING)
    else:
        spec.depth_encoding = loader.get('depth_encoding', 'raw')
        spec.depth_scale = float(loader.get('depth_scale', 1.0))
        spec.imdecode_backend = loader.get('imdecode_backend', 'cv2')
        rng = loader.get('depth_range', None)
        spec.depth_range = None if rng is None else tuple(
            float(v) for v in rng)
    if spec.depth_encoding not in ('raw', 'scale', 'clip', 'hha'):
        raise ValueError(
            'DeployableSegmentor: unknown depth_encoding '
            f'{spec.depth_encoding!r} in the test pipeline loader')
    if spec.depth_encoding == 'clip' and (spec.depth_range is None
                                          or len(spec.depth_range) != 2):
        raise ValueError("DeployableSegmentor: depth_encoding='clip' needs "
                         f'depth_range=(min, max), got {spec.depth_range}')

    pre = model.data_preprocessor
    if getattr(pre, '_enable_normalize', False):
        spec.mean = tuple(float(v) for v in pre.mean.flatten())
        spec.std = tuple(float(v) for v in pre.std.flatten())
    spec.bgr_to_rgb = bool(getattr(pre, 'channel_conversion', False))
    test_pad = getattr(pre, 'test_cfg', None)
    if test_pad:
        raise ValueError(
            'DeployableSegmentor: data_preprocessor.test_cfg='
            f'{test_pad} (test-time padding) is not supported by the '
            'export; remove it from the config.')
    test_cfg = model.test_cfg or {}
    spec.resize_mode = test_cfg.get('resize_mode', 'bilinear')
    if spec.resize_mode not in _RESIZE_MODES:
        raise ValueError('DeployableSegmentor: test_cfg.resize_mode='
                         f'{spec.resize_mode!r}; supported: {_RESIZE_MODES}')
    spec.align_corners = bool(getattr(model, 'align_corners', False))
    return spec


class DeployableSegmentor(nn.Module):
    """Sensor frames -> fused logits and class ids, in one graph.

    Args:
        model (nn.Module): A ``MultiModalEncoderDecoder`` in eval mode.
        spec (PreprocessSpec): From :func:`preprocess_spec`.
        preprocess (bool): Take raw frames (``rgb`` uint8 (B, H, W, 3),
            ``depth`` (B, H, W) / (B, H, W, 3)) and encode + normalise them
            in the graph. False: take the normalised float tensors
            ``rgb`` (B, 3, H, W) and ``depth`` (B, 3, H, W) as the
            backbone sees them. Defaults to True.
        branches (bool): Also return each modality's logits. Defaults to
            False.
        matmul_bicubic (bool): Run a 'bicubic' ``resize_mode`` as two
            matrix products (:func:`.resize.bicubic_resize`, the graph's
            form). False: ``F.interpolate``, as the segmentor itself does
            (the reference of ``verify_onnx``). Defaults to True.

    Shape:
        - Output: ``logits`` (B, K, H, W) float32, ``pred`` (B, H, W)
          int64, and with ``branches`` ``logits_<name>`` (B, K, H, W) per
          modality.
    """

    def __init__(self,
                 model: nn.Module,
                 spec: PreprocessSpec,
                 preprocess: bool = True,
                 branches: bool = False,
                 matmul_bicubic: bool = True) -> None:
        super().__init__()
        mode = (model.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ValueError(
                f"DeployableSegmentor: test_cfg.mode={mode!r} is not "
                "exported; only whole-image inference (mode='whole') is. "
                "Set test_cfg=dict(mode='whole') (e.g. --cfg-options "
                "model.test_cfg.mode=whole) and feed frames at the size "
                'the model should see.')
        if not hasattr(model, 'branch_logits'):
            raise TypeError(
                f'DeployableSegmentor: {type(model).__name__} is not a '
                'MultiModalEncoderDecoder (no branch_logits)')
        self.model = model
        self.spec = spec
        self.preprocess = preprocess
        self.branches = branches
        self.matmul_bicubic = matmul_bicubic
        self.modality_names = tuple(
            getattr(model, 'modality_names', ('rgb', 'depth')))
        self.register_buffer(
            'mean',
            torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1),
            persistent=False)
        self.register_buffer(
            'std',
            torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1),
            persistent=False)

    @property
    def output_names(self) -> List[str]:
        """Graph output names, in order."""
        names = ['logits', 'pred']
        if self.branches:
            names += [f'logits_{n}' for n in self.modality_names]
        return names

    def encode(self, rgb: Tensor, depth: Tensor) -> Tensor:
        """Raw frames -> the normalised (B, 6, H, W) network input.

        Args:
            rgb (Tensor): (B, H, W, 3) uint8, RGB order.
            depth (Tensor): (B, H, W) any numeric dtype, or (B, H, W, 3)
                for 'hha'.

        Returns:
            Tensor: (B, 6, H, W) float32.
        """
        spec = self.spec
        img = rgb.permute(0, 3, 1, 2).to(torch.float32)
        if spec.bgr_to_rgb:
            img = img.flip(1)
        if spec.depth_encoding == 'hha':
            d = depth.permute(0, 3, 1, 2).to(torch.float32)
        else:
            d = depth.to(torch.float32)
            if spec.depth_encoding == 'scale':
                d = d * spec.depth_scale
            elif spec.depth_encoding == 'clip':
                lo, hi = spec.depth_range
                d = (d.clamp(lo, hi) - lo) * (255. / (hi - lo))
            d = d.unsqueeze(1).expand(-1, 3, -1, -1)
        x = torch.cat([img, d], dim=1)
        return (x - self.mean) / self.std

    def forward(self, rgb: Tensor, depth: Tensor) -> Tuple[Tensor, ...]:
        """Run the segmentor.

        Args:
            rgb (Tensor): (B, H, W, 3) uint8, or (B, 3, H, W) float
                normalised without ``preprocess``.
            depth (Tensor): (B, H, W) / (B, H, W, 3), or (B, 3, H, W)
                float normalised without ``preprocess``.

        Returns:
            tuple[Tensor]: ``logits`` (B, K, H, W), ``pred`` (B, H, W)
            int64, then per-modality logits if ``branches``.
        """
        if self.preprocess:
            x = self.encode(rgb, depth)
        else:
            x = torch.cat([rgb, depth], dim=1)
        return self.postprocess(self.model.branch_logits(x), x.shape[2:])

    def resize(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """(B, K, h, w) -> (B, K, H, W) with ``test_cfg.resize_mode``.

        'bicubic' runs as two matrix products (:func:`.resize.bicubic_resize`,
        the same values as ``F.interpolate``) unless ``matmul_bicubic`` is
        False: ONNX Runtime's cubic ``Resize`` kernel is about 12x slower.
        The other modes export to ``Resize``."""
        mode = self.spec.resize_mode
        if mode == 'bicubic' and self.matmul_bicubic:
            return bicubic_resize(logits, size, self.spec.align_corners)
        kwargs = dict(size=size, mode=mode)
        if mode != 'nearest':
            kwargs['align_corners'] = self.spec.align_corners
        return F.interpolate(logits, **kwargs)

    def postprocess(self, outs: Sequence[Tensor],
                    size: Sequence[int]) -> Tuple[Tensor, ...]:
        """Branch logits (M + 1) x (B, K, h, w), ensemble last -> outputs
        resized to ``size`` (H, W) (see :meth:`forward`)."""
        if not self.branches:
            outs = outs[-1:]
        else:
            outs = [outs[-1]] + list(outs[:-1])
        resized = [self.resize(o, size) for o in outs]
        logits = resized[0]
        return (logits, logits.argmax(dim=1)) + tuple(resized[1:])

"""A segmentor as one traceable graph: sensor frames in, logits and class
ids out, for K = 2 .. 4 input modalities (RGB-D is ``('rgb', 'depth')``).

:class:`DeployableSegmentor` wraps a :class:`MultiModalEncoderDecoder`
through its public interface only (``data_preprocessor`` settings,
``branch_logits``, ``align_corners``, ``test_cfg``), so the backbones can
change their module layout without touching the export.

What the graph computes (whole-image inference at the input size)::

    rgb   uint8 (B, H, W, 3), RGB order ----------.
                                                    > (B, 3K, H, W) float
    depth (B, H, W) as stored  --encode(config)---'       |
          (B, H, W, 3) uint8 for 'hha'              (x - mean) / std
    <modality> (B, H, W) or (B, H, W, 3): one input     |
          per further modality (K = 3, 4) ------'       |
                                                          |
                       backbone + head + ensemble (B, K, H/4, W/4) x (M+1)
                                                          |
                      resize to (H, W) (test_cfg.resize_mode, default
                      bilinear, align_corners of the head; bicubic as
                      two matrix products)
                                                          |
                      logits (B, K, H, W) float32, pred (B, H, W) int64

Each modality is encoded by ``ModalityEncoding.encode_tensor``
(:mod:`geminifusion_mmseg.datasets.transforms.modality_encoding`) with the
encoding of the config's loader (``LoadRGBDImageFromFile``'s depth
encoding, or ``LoadMultiModalImageFromFile``'s ``encodings``): the
arithmetic of the data pipeline, e.g. ``raw`` (value as stored), ``scale``
(value * scale), ``clip`` (``(clip(v, lo, hi) - lo) * 255 / (hi - lo)``),
``hha`` / ``image`` (a 3-channel image as is). The geometric resize of the
config's test pipeline (e.g. ``ResizeShortSideToMultiple``) is NOT in the
graph: the graph runs at the size it is fed (see
:mod:`geminifusion_mmseg.apis.onnx_inference`, which
applies it on the host).
"""
import copy
import logging
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor

from ..datasets.transforms.modality_encoding import (ModalityEncoding,
                                                     parse_encodings)
from ..utils.pipeline_cfg import (find_size_mismatch, find_test_dataset_cfg,
                                  find_test_pipeline, transform_name)
from .resize import bicubic_resize

__all__ = [
    'PreprocessSpec', 'preprocess_spec', 'DeployableSegmentor',
    'MAX_MODALITIES'
]

_FILE_LOADERS = ('LoadRGBDImageFromFile', 'LoadRGBDImageFromNDArray')
_MM_LOADERS = ('LoadMultiModalImageFromFile', 'LoadMultiModalImageFromNDArray')
_RESIZE_MODES = ('bilinear', 'bicubic', 'nearest')
#: Most input modalities an exported graph takes (one input each).
MAX_MODALITIES = 4


@dataclass
class PreprocessSpec:
    """What the graph does to the raw frames before the network.

    Attributes:
        depth_encoding (str): 'raw', 'scale', 'clip' or 'hha' (RGB-D
            loader: the depth encoding).
        depth_scale (float): Factor of 'scale'.
        depth_range (tuple[float, float] | None): (min, max) of 'clip'.
        mean (list[float]): 3K values, subtracted per channel (modalities
            in order).
        std (list[float]): 3K values, divisor per channel.
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
            outside the graph, which takes one size for all inputs.
        modalities (tuple[str]): The graph's inputs, one per modality,
            RGB first (``('rgb', 'depth')`` for RGB-D).
        encodings (dict | None): ``{modality: ModalityEncoding.as_dict()}``
            for every modality but RGB; None (files of RGB-D models
            exported before K modalities): the ``depth_*`` fields.
        resize_to_rgb (tuple[str]): Modalities the loader resizes (nearest)
            to the RGB size (e.g. DeLiVER's event maps); on the host.
        loader (str): The config's file loader ('LoadRGBDImageFromFile' or
            'LoadMultiModalImageFromFile'): how files are read on the host.
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
    modalities: Tuple[str, ...] = ('rgb', 'depth')
    encodings: Optional[Dict[str, dict]] = None
    resize_to_rgb: Tuple[str, ...] = ()
    loader: str = 'LoadRGBDImageFromFile'

    def to_dict(self) -> dict:
        """A JSON-friendly dict (for the ONNX metadata)."""
        d = asdict(self)
        for key in ('mean', 'std', 'modalities', 'resize_to_rgb'):
            d[key] = list(d[key])
        if d['depth_range'] is not None:
            d['depth_range'] = list(d['depth_range'])
        if d['encodings'] is not None:
            d['encodings'] = {
                k:
                dict(
                    v,
                    range=None if v.get('range') is None else list(v['range']))
                for k, v in d['encodings'].items()
            }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> 'PreprocessSpec':
        """Inverse of :meth:`to_dict` (the ONNX metadata's ``preprocess``);
        keys of older files that are absent keep their defaults."""
        d = dict(d)
        for key in ('mean', 'std', 'modalities', 'resize_to_rgb',
                    'depth_range'):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        if d.get('resize_pipeline') is not None:
            d['resize_pipeline'] = dict(d['resize_pipeline'])
        return cls(**d)

    @property
    def multimodal(self) -> bool:
        """Whether files are read by ``LoadMultiModalImageFromFile``."""
        return self.loader in _MM_LOADERS

    def encoding(self, name: str) -> ModalityEncoding:
        """The encoding of modality ``name`` (one of :attr:`modalities`)."""
        if name == 'rgb':
            return ModalityEncoding('rgb')
        if self.encodings is not None and name in self.encodings:
            return ModalityEncoding.from_dict(self.encodings[name])
        if name == 'depth' and not self.multimodal:
            return ModalityEncoding(self.depth_encoding, self.depth_scale,
                                    self.depth_range)
        raise KeyError(f'PreprocessSpec: no encoding for the modality '
                       f'{name!r} (modalities {list(self.modalities)})')

    def channels(self, name: str) -> int:
        """Channels of modality ``name``'s graph input: 1 (no axis,
        (B, H, W)) for the metric depth encodings, else 3
        ((B, H, W, 3))."""
        return 1 if self.encoding(name).is_metric else 3

    @property
    def depth_channels(self) -> int:
        """Channels of the depth input: 3 for 'hha', else 1 (no axis)."""
        return self.channels('depth')


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
    if not 2 <= num_modalities <= MAX_MODALITIES:
        raise ValueError(
            f'ONNX export takes models of 2 to {MAX_MODALITIES} input '
            f'modalities; this model has {num_modalities} '
            f'({getattr(model, "modality_names", "?")} streams).')
    spec = PreprocessSpec()
    loader = None
    if cfg is not None:
        spec.size_mismatch = find_size_mismatch(cfg)
        for t in find_test_pipeline(cfg):
            name = transform_name(t)
            if name in _FILE_LOADERS + _MM_LOADERS:
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
    if loader is not None and transform_name(loader) in _MM_LOADERS:
        _multimodal_encodings(spec, loader, cfg, num_modalities)
    elif loader is None:
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
    if spec.multimodal:
        pass
    elif num_modalities != 2:
        raise ValueError(
            f'DeployableSegmentor: the model takes {num_modalities} input '
            'modalities but the test pipeline loads RGB-D pairs '
            '(LoadRGBDImageFromFile)')
    elif spec.depth_encoding not in ('raw', 'scale', 'clip', 'hha'):
        raise ValueError(
            'DeployableSegmentor: unknown depth_encoding '
            f'{spec.depth_encoding!r} in the test pipeline loader')
    if spec.depth_encoding == 'clip' and (spec.depth_range is None
                                          or len(spec.depth_range) != 2):
        raise ValueError("DeployableSegmentor: depth_encoding='clip' needs "
                         f'depth_range=(min, max), got {spec.depth_range}')

    pre = model.data_preprocessor
    channels = 3 * len(spec.modalities)
    spec.mean, spec.std = (0., ) * channels, (1., ) * channels
    if getattr(pre, '_enable_normalize', False):
        spec.mean = tuple(float(v) for v in pre.mean.flatten())
        spec.std = tuple(float(v) for v in pre.std.flatten())
        if len(spec.mean) != channels:
            raise ValueError(
                f'DeployableSegmentor: the data preprocessor normalises '
                f'{len(spec.mean)} channels but the {len(spec.modalities)} '
                f'modalities {list(spec.modalities)} give {channels}')
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


def _multimodal_encodings(spec: PreprocessSpec, loader: dict, cfg: Config,
                          num_modalities: int) -> None:
    """Fill ``spec`` from the config's ``LoadMultiModalImageFromFile``:
    modalities (the loader's, else the test dataset's), their encodings,
    ``resize_to_rgb`` and the decoder."""
    modalities = loader.get('modalities', None)
    if modalities is None:
        modalities = (find_test_dataset_cfg(cfg) or {}).get('modalities')
    if modalities is None:
        raise ValueError(
            'DeployableSegmentor: the config names no modalities '
            "(LoadMultiModalImageFromFile.modalities or the test dataset's "
            'modalities)')
    modalities = tuple(modalities)
    if len(modalities) != num_modalities or modalities[0] != 'rgb':
        raise ValueError(
            f'DeployableSegmentor: the test pipeline loads the modalities '
            f'{list(modalities)} but the model takes {num_modalities} input '
            "modalities, 'rgb' first")
    given = dict(loader.get('encodings', None) or {})
    encodings = parse_encodings(modalities, {
        k: v
        for k, v in given.items() if k in modalities
    })
    spec.loader = 'LoadMultiModalImageFromFile'
    spec.modalities = modalities
    spec.encodings = {
        name: enc.as_dict()
        for name, enc in encodings.items() if name != 'rgb'
    }
    resize = loader.get('resize_to_rgb', ())
    spec.resize_to_rgb = tuple([resize] if isinstance(resize, str) else resize)
    spec.imdecode_backend = loader.get('imdecode_backend', 'cv2')


class DeployableSegmentor(nn.Module):
    """Sensor frames -> fused logits and class ids, in one graph.

    Args:
        model (nn.Module): A ``MultiModalEncoderDecoder`` in eval mode.
        spec (PreprocessSpec): From :func:`preprocess_spec`.
        preprocess (bool): Take raw frames, one per modality of
            ``spec.modalities`` (``rgb`` uint8 (B, H, W, 3); the others as
            stored, (B, H, W) or (B, H, W, 3), see
            :meth:`PreprocessSpec.channels`) and encode + normalise them in
            the graph. False: take one normalised float (B, 3, H, W) tensor
            per modality, as the backbone sees them. Defaults to True.
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
        self.encodings = [spec.encoding(m) for m in spec.modalities]
        self.register_buffer(
            'mean',
            torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1),
            persistent=False)
        self.register_buffer(
            'std',
            torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1),
            persistent=False)

    @property
    def input_names(self) -> List[str]:
        """Graph input names, in order: the modalities."""
        return list(self.spec.modalities)

    @property
    def output_names(self) -> List[str]:
        """Graph output names, in order."""
        names = ['logits', 'pred']
        if self.branches:
            names += [f'logits_{n}' for n in self.modality_names]
        return names

    def encode(self, *frames: Tensor) -> Tensor:
        """Raw frames -> the normalised (B, 3K, H, W) network input.

        Args:
            *frames (Tensor): One per modality, in the order of
                ``spec.modalities``: ``rgb`` (B, H, W, 3) uint8, RGB order;
                the others (B, H, W) or (B, H, W, 3), any numeric dtype,
                values as stored. Each is encoded by its
                :class:`ModalityEncoding` (``encode_tensor``).

        Returns:
            Tensor: (B, 3K, H, W) float32.
        """
        if len(frames) != len(self.encodings):
            raise ValueError(
                f'DeployableSegmentor: {len(frames)} frames for the '
                f'{len(self.encodings)} modalities {self.input_names}')
        channels = []
        for enc, x in zip(self.encodings, frames):
            c = enc.encode_tensor(x)
            if enc.encoding == 'rgb' and self.spec.bgr_to_rgb:
                c = c.flip(1)
            channels.append(c)
        x = torch.cat(channels, dim=1)
        return (x - self.mean) / self.std

    def forward(self, *frames: Tensor) -> Tuple[Tensor, ...]:
        """Run the segmentor.

        Args:
            *frames (Tensor): One per modality (see :meth:`encode`), or
                (B, 3, H, W) float normalised without ``preprocess``.

        Returns:
            tuple[Tensor]: ``logits`` (B, K, H, W), ``pred`` (B, H, W)
            int64, then per-branch logits if ``branches``.
        """
        if self.preprocess:
            x = self.encode(*frames)
        else:
            x = torch.cat(frames, dim=1)
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

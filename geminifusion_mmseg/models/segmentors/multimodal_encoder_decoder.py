"""Encoder-decoder for modality-stacked input with a per-branch ensemble."""
import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList, add_prefix)
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.streams import resolve_backbone_cfg, resolve_stream_names

RESIZE_MODES = ('bilinear', 'bicubic')
_warned_num_modalities = False  # the deprecated attribute's one warning


def _flip_dims(meta: dict) -> Tuple[int, ...]:
    """The logits dims a test-time flip of ``meta`` reverses: () without a
    flip, (3, ) horizontal, (2, ) vertical.

    Raises:
        ValueError: ``flip_direction`` is another value (named).
    """
    if not meta.get('flip', None):
        return ()
    direction = meta.get('flip_direction', None)
    if direction not in ('horizontal', 'vertical'):
        raise ValueError(f'unknown flip_direction {direction!r}')
    return (3, ) if direction == 'horizontal' else (2, )


@MODELS.register_module()
class MultiModalEncoderDecoder(EncoderDecoder):
    """GeminiFusion segmentor: one shared head per modality + ensemble.

    The input is one image whose channels are the modalities stacked
    (rgb 3 + depth 3). The backbone returns modality-stacked features
    (M*B rows, rgb first); the shared decode head predicts logits for each
    modality; the ensemble is ``sum_m softmax(alpha)[m] * logits_m.detach()``
    (docs/model.md). Training sums one loss per branch, named by branch
    (``rgb.loss_ce``, ``depth.loss_ce``, ``ens.loss_ce``). The prediction
    is the ensemble; ``predict`` also attaches each modality's own
    prediction as ``pred_sem_seg_<name>`` so metrics can score the branches.

    Test-time logits resize (``test_cfg.resize_mode``): every resize of
    logits at test time -- from the head's 1/4 resolution to the input
    size (whole image, and each window in slide mode), and from there to
    ``ori_shape`` in :meth:`postprocess_result` (so each ``--tta`` view
    too) -- uses this mode. ``'bilinear'`` (the default) is mmseg's;
    ``'bicubic'`` is the published GeminiFusion protocol: the release
    upsamples each output's logits with OpenCV ``INTER_CUBIC`` before the
    argmax, which ``F.interpolate(mode='bicubic', align_corners=False)``
    reproduces (same kernel, a = -0.75, and border replication; equal to
    about 1e-6 relative). Training losses always use the decode head's
    bilinear resize, as released.

    Args:
        backbone, decode_head, train_cfg, test_cfg, data_preprocessor,
            init_cfg: as :class:`mmseg.models.EncoderDecoder`
            (``test_cfg.mode`` 'whole' or 'slide'; ``test_cfg.resize_mode``
            'bilinear' or 'bicubic', see above).
        pretrained (str, optional): mmseg's legacy argument (set to None by
            ``mmseg.apis.init_model``); a path becomes the backbone's
            ``init_cfg=dict(type='Pretrained', checkpoint=path)``.
        modality_names (Sequence[str], optional): One name per branch
            (backbone output stream), in channel order. None (default):
            derived from ``modalities``, else ('rgb', 'depth'). With more
            than 2 input modalities the backbone has 2 streams, RGB and the
            fused other modalities, named ('rgb', 'fused').
        learn_alpha (bool): Make the ensemble weights ``alpha`` trainable.
            Defaults to False: as released, alpha stays at ones (a plain
            average).
        norm_eval (bool): Keep every BatchNorm in eval mode while training
            ("freeze BN", as released). Defaults to True.
        branch_predictions (bool): Attach per-modality predictions in
            ``predict``. Defaults to True.
        modalities (Sequence[str], optional): The input modalities in
            channel order, RGB first, e.g. ``('rgb', 'depth', 'event')``
            (K of them). Given, they fix ``backbone.in_channels`` (3 * K),
            ``backbone.num_modalities`` (K) and ``modality_names``
            (:func:`~geminifusion_mmseg.models.utils.streams.stream_names`:
            ``('rgb', <other>)`` for K = 2, ``('rgb', 'fused')`` for
            K > 2); those may then be left out (or None), and a value given
            beside the modalities that disagrees is a ValueError naming the
            key. None (default): the three are taken as given (a None
            ``in_channels`` / ``num_modalities``: the backbone's default).

    Attributes:
        modalities (tuple[str] | None): ``modalities`` as given.
        num_streams (int): The backbone's output streams, one branch each
            (2: rgb and depth, or rgb and the fused stream of K > 2 input
            modalities). ``num_modalities`` is its deprecated name (warns
            once per process).
        inference_autocast_dtype (torch.dtype | None): At test time (eval
            mode), the backbone and head run under ``torch.autocast`` with
            this dtype and the logits are cast back to fp32 before the
            resize and argmax; None (the default): fp32. Set it with
            :func:`geminifusion_mmseg.apis.precision.set_inference_precision`
            (``init_model(..., precision='bf16')``).

    Shape:
        - inputs: (B, 3 * M, H, W).
        - ``_forward`` output: (B, num_classes, H/4, W/4), the ensemble.
    """
    inference_autocast_dtype: Optional[torch.dtype] = None

    def __init__(self,
                 backbone: ConfigType,
                 decode_head: ConfigType,
                 modality_names: Optional[Sequence[str]] = None,
                 learn_alpha: bool = False,
                 norm_eval: bool = True,
                 branch_predictions: bool = True,
                 neck: OptConfigType = None,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 pretrained: Optional[str] = None,
                 modalities: Optional[Sequence[str]] = None):
        if pretrained is not None:  # mmseg's legacy argument
            if backbone.get('init_cfg') is not None:
                raise ValueError('MultiModalEncoderDecoder: both pretrained '
                                 'and backbone.init_cfg are set')
            backbone = dict(
                backbone,
                init_cfg=dict(type='Pretrained', checkpoint=pretrained))
        if neck is not None or auxiliary_head is not None:
            raise ValueError('MultiModalEncoderDecoder supports neither a '
                             'neck nor an auxiliary head')
        where = 'MultiModalEncoderDecoder'
        backbone = resolve_backbone_cfg(backbone, modalities, where)
        modality_names = resolve_stream_names(modality_names, modalities,
                                              where)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.modalities = None if modalities is None else tuple(modalities)
        self.modality_names = modality_names
        # one branch per backbone output stream: the modalities, or with
        # K > 2 inputs (docs/model.md "K modalities") rgb and the fused
        # stream of the other K - 1
        inputs = getattr(self.backbone, 'num_modalities', None)
        num_streams = getattr(self.backbone, 'num_streams', inputs)
        if num_streams != len(self.modality_names):
            raise ValueError(
                f'MultiModalEncoderDecoder: {len(self.modality_names)} '
                f'modality_names {self.modality_names} but the backbone '
                f'{type(self.backbone).__name__} has {num_streams} '
                f'output streams (num_modalities={inputs}; one name per '
                "stream, e.g. ('rgb', 'depth'), or ('rgb', 'fused') for "
                'more than 2 input modalities)')
        if 'ens' in self.modality_names:
            raise ValueError("'ens' is reserved for the ensemble branch")
        self._check_normalisation()
        self.num_streams = num_streams
        self.alpha = nn.Parameter(
            torch.ones(num_streams), requires_grad=learn_alpha)
        self.norm_eval = norm_eval
        self.branch_predictions = branch_predictions
        self.resize_mode = self.test_cfg.get('resize_mode', 'bilinear') \
            if self.test_cfg is not None else 'bilinear'
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f'MultiModalEncoderDecoder: test_cfg.resize_mode must be one '
                f'of {RESIZE_MODES}, got {self.resize_mode!r}')

    def _check_normalisation(self) -> None:
        """The data preprocessor's mean/std must give one value per input
        channel of the backbone (3 per modality)."""
        dp = self.data_preprocessor
        channels = getattr(self.backbone, 'in_channels', None)
        if channels is None or not getattr(dp, '_enable_normalize', False):
            return
        for name in ('mean', 'std'):
            n = getattr(dp, name).numel()
            if n != channels:
                raise ValueError(
                    f'MultiModalEncoderDecoder: data_preprocessor.{name} has '
                    f'{n} values but the backbone takes {channels} input '
                    f'channels (3 per modality: {channels // 3} modalities). '
                    'Give one mean and one std per channel, rgb first, e.g. '
                    'mean=[123.675, 116.28, 103.53, 0, 0, 0], std=[58.395, '
                    '57.12, 57.375, 255, 255, 255] for RGB-D '
                    '(configs/_base_/models/geminifusion_mit.py).')

    def _check_labels(self, data_samples: SampleList) -> None:
        """Every label must be a class of the head or the ignore index
        (else the loss fails with a bare 'Target N is out of bounds').

        One host-device sync per batch: the largest out-of-range value of
        each sample (0 where there is none: such values are at least
        ``num_classes`` >= 1) is reduced on the device, and the B values
        are read back at once.
        """
        num_classes = self.decode_head.num_classes
        ignore = self.decode_head.ignore_index
        worst = []
        for sample in data_samples:
            label = sample.gt_sem_seg.data
            bad = (label >= num_classes) & (label != ignore)
            worst.append((label * bad).amax())
        if not worst:
            return
        for sample, value in zip(data_samples, torch.stack(worst).tolist()):
            if value > 0:
                raise ValueError(
                    f'MultiModalEncoderDecoder: the label map '
                    f"{sample.metainfo.get('seg_map_path', '')} holds the "
                    f'value {value}, but the decode head has num_classes='
                    f'{num_classes} (valid labels 0..{num_classes - 1}, and '
                    f'{ignore} = ignore). Set decode_head.num_classes to the '
                    "dataset's number of classes (the dataset's metainfo "
                    'classes), or map the labels (label_map / '
                    'reduce_zero_label).')

    @property
    def num_modalities(self) -> int:
        """Deprecated name of :attr:`num_streams` (it counts the backbone's
        output streams, not the input modalities); warns once."""
        _warn_num_modalities()
        return self.num_streams

    @num_modalities.setter
    def num_modalities(self, value: int) -> None:
        _warn_num_modalities()
        self.num_streams = value

    @property
    def branch_names(self) -> List[str]:
        """Names of all outputs: the modalities, then 'ens'."""
        return list(self.modality_names) + ['ens']

    def train(self, mode: bool = True) -> 'MultiModalEncoderDecoder':
        super().train(mode)
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def branch_logits(self, inputs: Tensor) -> List[Tensor]:
        """All branch logits at the decode head's resolution.

        The segmentor's public contract for code that needs every branch
        (the deployment wrapper, the fp16 ONNX export, the benchmark
        tools): what ``loss`` trains on and ``predict`` resizes. It runs the
        backbone and the shared head once per batch (once per stream in
        training with ``norm_eval=False``, so BatchNorm sees each stream
        alone) and the ensemble of the streams' detached logits, weighted
        by ``softmax(alpha)``.

        Args:
            inputs (Tensor): (B, C, H, W), the modalities' channels stacked
                in config order, normalised by the data preprocessor
                (C = ``backbone.in_channels``, e.g. 6 for RGB-D).

        Returns:
            list[Tensor]: ``num_streams + 1`` tensors (B, K, H/4, W/4),
            K = ``decode_head.num_classes`` (``out_channels``), in the
            order of :attr:`branch_names`: each stream's logits
            (``modality_names``), then the ensemble (index -1, what
            ``_forward`` returns).
        """
        feats = self.extract_feat(inputs)
        B = inputs.shape[0]
        M = self.num_streams
        if self.training and not self.norm_eval:
            # BatchNorm statistics per modality, as separate head passes.
            per_modality = [
                self.decode_head([f[m * B:(m + 1) * B] for f in feats])
                for m in range(M)
            ]
        else:
            per_modality = list(self.decode_head(list(feats)).split(B))
        weights = F.softmax(self.alpha, dim=0)
        ens = sum(w * logit.detach()
                  for w, logit in zip(weights, per_modality))
        return per_modality + [ens]

    def _branch_logits(self, inputs: Tensor) -> List[Tensor]:
        """Internal name of :meth:`branch_logits`, kept for older callers;
        use :meth:`branch_logits`."""
        return self.branch_logits(inputs)

    def _encode_decode_all(self, inputs: Tensor,
                           batch_img_metas: List[dict]) -> Tensor:
        """All branch logits resized to the input (img_shape) size.

        Returns:
            Tensor: (B, M + 1, K, H, W); index -1 is the ensemble.
        """
        dtype = None if self.training else self.inference_autocast_dtype
        if dtype is None:
            branches = self.branch_logits(inputs)
        else:
            with torch.autocast(inputs.device.type, dtype=dtype):
                branches = self.branch_logits(inputs)
            branches = [b.float() for b in branches]
        logits = torch.stack(branches, dim=1)
        B, R, K, h, w = logits.shape
        logits = self._resize_logits(
            logits.view(B, R * K, h, w), batch_img_metas[0]['img_shape'])
        return logits.view(B, R, K, *logits.shape[2:])

    def _resize_logits(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Test-time resize of (B, C, h, w) logits to ``size`` (H, W) with
        ``test_cfg.resize_mode``; the identity when the size is equal."""
        if tuple(logits.shape[-2:]) == tuple(size):
            return logits
        return resize(
            logits,
            size=tuple(size),
            mode=self.resize_mode,
            align_corners=self.align_corners,
            warning=False)

    def postprocess_result(self,
                           seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """mmseg's ``postprocess_result``, with ``test_cfg.resize_mode``.

        Per image: remove the padding (``padding_size`` /
        ``img_padding_size``), undo a test-time flip, resize the logits to
        ``ori_shape`` and take the argmax. With ``resize_mode='bilinear'``
        (or no ``data_samples``) this is mmseg's
        :meth:`BaseSegmentor.postprocess_result` itself.

        Args:
            seg_logits (Tensor): (B, K, H, W) logits at the input size.
            data_samples (list[SegDataSample], optional): Their metainfo
                gives padding, flip and ``ori_shape``. None: the logits are
                taken as they are.

        Returns:
            list[SegDataSample]: ``seg_logits`` (K, h0, w0) and
            ``pred_sem_seg`` (1, h0, w0) at ``ori_shape`` (a 1-channel head:
            sigmoid and ``decode_head.threshold``, as mmseg).
        """
        if data_samples is None:
            return super().postprocess_result(seg_logits, data_samples)
        for sample in data_samples:  # a clear error rather than mmseg's assert
            _flip_dims(sample.metainfo)
        if self.resize_mode == 'bilinear':
            return super().postprocess_result(seg_logits, data_samples)
        # mmseg hard-codes a bilinear resize to ori_shape; the published
        # protocol's bicubic one needs its own unpad / flip / resize. The
        # argmax (or sigmoid and threshold) is then mmseg's, on logits
        # already at ori_shape (no data samples: nothing else is done).
        H, W = seg_logits.shape[-2:]
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            left, right, top, bottom = meta.get(
                'img_padding_size', meta.get('padding_size', [0] * 4))
            logits = seg_logits[i:i + 1, :, top:H - bottom, left:W - right]
            if _flip_dims(meta):
                logits = logits.flip(dims=_flip_dims(meta))
            result = super().postprocess_result(
                self._resize_logits(logits, meta['ori_shape']))[0]
            sample.set_data({
                'seg_logits': result.seg_logits,
                'pred_sem_seg': result.pred_sem_seg
            })
        return data_samples

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Ensemble logits (B, K, H, W) at the input size."""
        return self._encode_decode_all(inputs, batch_img_metas)[:, -1]

    def _test_mode(self) -> str:
        """``test_cfg.mode`` ('whole' by default), checked.

        Raises:
            ValueError: It is neither 'whole' nor 'slide' (mmseg asserts).
        """
        mode = self.test_cfg.get('mode', 'whole')
        if mode not in ('whole', 'slide'):
            raise ValueError(f'test_cfg.mode must be "whole" or "slide", '
                             f'got {mode!r}')
        return mode

    def _inference_all(self, inputs: Tensor,
                       batch_img_metas: List[dict]) -> Tensor:
        """Whole or slide inference (``test_cfg.mode``), all branches.

        Slide mode is mmseg's :meth:`EncoderDecoder.slide_inference`, run
        once for all branches (:class:`_StackedBranches`).

        Returns:
            Tensor: (B, M + 1, K, H, W); index -1 is the ensemble.
        """
        if self._test_mode() == 'whole':
            return self._encode_decode_all(inputs, batch_img_metas)
        stacked = EncoderDecoder.slide_inference(
            _StackedBranches(self), inputs, batch_img_metas)
        return stacked.unflatten(1, (self.num_streams + 1, self.out_channels))

    def inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Ensemble logits (B, K, H, W): mmseg's ``whole_inference`` or
        ``slide_inference`` over :meth:`encode_decode`.

        As mmseg's ``inference``, but a bad ``test_cfg.mode`` is a
        ValueError, and ``test_cfg`` may be a plain dict in whole mode.
        """
        if self._test_mode() == 'slide':
            return self.slide_inference(inputs, batch_img_metas)
        return self.whole_inference(inputs, batch_img_metas)

    def predict(self,
                inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """Predict the ensemble (``seg_logits``, ``pred_sem_seg``) and, if
        ``branch_predictions``, each modality's ``pred_sem_seg_<name>``."""
        if data_samples is not None:
            batch_img_metas = [s.metainfo for s in data_samples]
        else:
            batch_img_metas = [
                dict(
                    ori_shape=inputs.shape[2:],
                    img_shape=inputs.shape[2:],
                    pad_shape=inputs.shape[2:],
                    padding_size=[0, 0, 0, 0])
            ] * inputs.shape[0]
        logits = self._inference_all(inputs, batch_img_metas)
        results = self.postprocess_result(logits[:, -1], data_samples)
        if self.branch_predictions:
            for m, name in enumerate(self.modality_names):
                branch = self.postprocess_result(
                    logits[:, m],
                    [SegDataSample(metainfo=r.metainfo) for r in results])
                for result, b in zip(results, branch):
                    result.set_data({
                        f'pred_sem_seg_{name}':
                        PixelData(data=b.pred_sem_seg.data)
                    })
        return results

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """One decode-head loss per branch, prefixed with its name.

        Raises:
            ValueError: A label is neither a class of the head nor the
                ignore index (naming the file, the value and
                ``num_classes``).
        """
        self._check_labels(data_samples)
        losses = dict()
        for name, logits in zip(self.branch_names, self.branch_logits(inputs)):
            losses.update(
                add_prefix(
                    self.decode_head.loss_by_feat(logits, data_samples), name))
        return losses

    def _forward(self,
                 inputs: Tensor,
                 data_samples: OptSampleList = None) -> Tensor:
        """Ensemble logits at the head's resolution (B, K, H/4, W/4)."""
        return self.branch_logits(inputs)[-1]


class _StackedBranches:
    """The segmentor as mmseg's :meth:`EncoderDecoder.slide_inference`
    reads it (``test_cfg``, ``out_channels``, ``encode_decode``), with every
    branch's logits stacked along the channels.

    mmseg's slide inference accumulates one logit map per window; the
    segmentor's branches are ``M + 1`` maps of one backbone pass. Stacking
    them as ``(M + 1) * K`` channels lets mmseg's code run once per window
    for all branches (instead of a copy of it, or ``M + 1`` backbone passes
    per window); the windows, their sums and the division by the overlap
    count are elementwise, so every branch is exactly what mmseg's slide
    inference gives for it alone.

    Args:
        segmentor (MultiModalEncoderDecoder): The model.

    Shape:
        ``encode_decode``: (B, C, h, w) window in, (B, (M + 1) * K, h, w)
        out, branch-major (``branch_names`` order).
    """

    def __init__(self, segmentor: MultiModalEncoderDecoder):
        self._segmentor = segmentor
        self.test_cfg = segmentor.test_cfg
        self.out_channels = (segmentor.num_streams + 1) * \
            segmentor.out_channels

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        logits = self._segmentor._encode_decode_all(inputs, batch_img_metas)
        return logits.flatten(1, 2)


def _warn_num_modalities() -> None:
    """The one warning per process for the deprecated
    ``MultiModalEncoderDecoder.num_modalities``."""
    global _warned_num_modalities
    if _warned_num_modalities:
        return
    _warned_num_modalities = True
    print_log(
        'MultiModalEncoderDecoder.num_modalities is deprecated: it counts '
        'the output streams (2 also for K > 2 input modalities); use '
        'num_streams (backbone.num_modalities counts the input modalities).',
        logger='current',
        level=logging.WARNING)

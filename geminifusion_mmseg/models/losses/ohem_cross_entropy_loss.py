"""Online hard example mining cross-entropy, as the DeLiVER code line."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class OhemCrossEntropyLoss(nn.Module):
    """Cross-entropy averaged over the hard pixels only (CMNeXt's OHEM).

    The loss used by the GeminiFusion DeLiVER models (CMNeXt's
    ``OhemCrossEntropy``): per-pixel cross-entropy (0 at ignored pixels);
    the pixels whose loss exceeds ``-log(thresh)`` (true-class probability
    below ``thresh``) are averaged; if fewer than ``n_min = (number of
    non-ignored pixels) // min_kept_divisor`` are that hard, the ``n_min``
    largest losses of the batch (ignored pixels' zeros included, as the
    release) are averaged instead. Computed over the whole batch given.
    A batch with no hard and no labelled pixel gives 0 (the release: NaN).

    mmseg's own ``OhemCrossEntropy`` differs (an absolute ``min_kept`` and
    a different call signature), hence this class.

    Args:
        thresh (float): Probability threshold of a hard pixel. Defaults to
            0.7.
        min_kept_divisor (int): At least ``valid // min_kept_divisor``
            pixels are kept. Defaults to 16.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        loss_name (str): Name of the loss item (must start with ``loss_``
            to be back-propagated). Defaults to 'loss_ohem'.
    """

    def __init__(self,
                 thresh: float = 0.7,
                 min_kept_divisor: int = 16,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_ohem'):
        super().__init__()
        if not 0 < thresh <= 1:
            raise ValueError(f'thresh must be in (0, 1], got {thresh}')
        if min_kept_divisor < 1:
            raise ValueError(
                f'min_kept_divisor must be >= 1, got {min_kept_divisor}')
        self.thresh = thresh
        # the loss of a pixel whose true-class probability is ``thresh``
        # (float32, as the release computes it)
        self._loss_thresh = -torch.log(torch.tensor(thresh))
        self.min_kept_divisor = int(min_kept_divisor)
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """The loss.

        Args:
            cls_score (Tensor): (B, K, H, W) logits.
            label (Tensor): (B, H, W) class ids, ``ignore_index`` ignored.
            weight (Tensor, optional): Per-pixel weights from a sampler;
                not supported (an OHEM loss selects pixels itself).
            ignore_index (int): Ignored label. Defaults to 255.

        Returns:
            Tensor: Scalar loss.
        """
        if weight is not None:
            raise ValueError('OhemCrossEntropyLoss selects its own pixels; '
                             'remove the decode head sampler')
        n_min = int((label != ignore_index).sum()) // self.min_kept_divisor
        loss = F.cross_entropy(
            cls_score, label, ignore_index=ignore_index,
            reduction='none').view(-1)
        hard = loss[loss > self._loss_thresh]
        if hard.numel() < n_min:
            hard = loss.topk(n_min)[0]
        if hard.numel() == 0:  # nothing hard, nothing labelled: 0, not NaN
            return loss.sum() * 0.
        return self.loss_weight * hard.mean()

    @property
    def loss_name(self) -> str:
        """Name of the loss item in the log."""
        return self._loss_name

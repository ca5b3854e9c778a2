"""IoU of the ensemble prediction and of each modality's own prediction."""
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from PIL import Image

from ...models.utils.streams import resolve_stream_names
from ...utils.atomic_io import atomic_output


@METRICS.register_module()
class MultiBranchIoUMetric(IoUMetric):
    """mmseg's :class:`IoUMetric` for the ensemble, plus one per branch.

    The ensemble (``pred_sem_seg``) is scored exactly as ``IoUMetric``
    (per-class table, ``aAcc``/``mIoU``/... keys). Each modality's own
    prediction (``pred_sem_seg_<name>``, attached by
    :class:`MultiModalEncoderDecoder`) adds ``<name>.mIoU``,
    ``<name>.mAcc`` and ``<name>.aAcc``, so logs show what fusion adds.
    Samples without branch predictions (e.g. test-time augmentation) are
    scored for the ensemble only.

    Args:
        branches (Sequence[str], optional): Branch names, the segmentor's
            ``modality_names``. None (default): derived from
            ``modalities``, else ('rgb', 'depth').
        modalities (Sequence[str], optional): The model's input
            modalities, RGB first; the branches are then the segmentor's
            stream names for them (``('rgb', <other>)`` for two,
            ``('rgb', 'fused')`` for more). ``branches`` given beside them
            must agree (else a ValueError naming both).
        **kwargs: :class:`IoUMetric` arguments.
    """

    def __init__(self,
                 branches: Optional[Sequence[str]] = None,
                 modalities: Optional[Sequence[str]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.branches = resolve_stream_names(branches, modalities,
                                             type(self).__name__, 'branches')

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score one batch: ensemble and, when present, each branch.

        Args:
            data_batch (dict): The batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs: ``pred_sem_seg``,
                ``gt_sem_seg`` (unless ``format_only``), ``img_path`` and
                optionally ``pred_sem_seg_<branch>``.

        Appends to ``self.results``, per sample, an ``OrderedDict`` mapping
        ``'ens'`` and each present branch to :meth:`intersect_and_union`'s
        4 per-class histograms. With ``output_dir`` set, the ensemble's
        label map is also written to ``<output_dir>/<image stem>.png``, as
        :class:`IoUMetric` does; with ``format_only`` only that is done.
        """
        if self.format_only:  # only write the ensemble's label files
            return super().process(data_batch, data_samples)
        num_classes = len(self.dataset_meta['classes'])
        for sample in data_samples:
            label = sample['gt_sem_seg']['data'].squeeze()
            entry = OrderedDict()
            for branch in ('ens', ) + self.branches:
                key = 'pred_sem_seg' if branch == 'ens' else \
                    f'pred_sem_seg_{branch}'
                if key in sample:
                    pred = sample[key]['data'].squeeze().to(label)
                    entry[branch] = self.intersect_and_union(
                        pred, label, num_classes, self.ignore_index)
            self.results.append(entry)
            if self.output_dir is not None:
                self._write_label_map(sample)

    def _write_label_map(self, sample: dict) -> None:
        """Write the ensemble prediction as :class:`IoUMetric` does.

        Args:
            sample (dict): A data sample with ``pred_sem_seg`` and
                ``img_path`` (and optionally ``reduce_zero_label``).

        The file is ``<output_dir>/<image stem>.png``, uint8, with 1 added to
        every label when ``reduce_zero_label`` is set; it is written to a
        temporary file and renamed when complete.
        """
        basename = osp.splitext(osp.basename(sample['img_path']))[0]
        mask = sample['pred_sem_seg']['data'].squeeze().cpu().numpy()
        if sample.get('reduce_zero_label', False):
            mask = mask + 1
        path = osp.abspath(osp.join(self.output_dir, f'{basename}.png'))
        with atomic_output(path, what='predicted label map') as tmp:
            Image.fromarray(mask.astype(np.uint8)).save(tmp, format='PNG')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Ensemble metrics (and table) as :class:`IoUMetric`, plus branches.

        Args:
            results (list): The entries :meth:`process` appended, from all
                processes.

        Returns:
            Dict[str, float]: ``IoUMetric``'s keys (``aAcc``, ``mIoU``,
            ``mAcc``, ...) for the ensemble, and ``<branch>.mIoU``,
            ``<branch>.mAcc``, ``<branch>.aAcc`` for each branch that every
            sample had; empty with ``format_only``.
        """
        if self.format_only:
            return super().compute_metrics(results)
        metrics = super().compute_metrics([r['ens'] for r in results])
        for branch in self.branches:
            stats = [r[branch] for r in results if branch in r]
            if len(stats) != len(results):
                continue
            areas = [sum(s[i] for s in stats) for i in range(4)]
            ret = self.total_area_to_metrics(*areas, ['mIoU'], self.nan_to_num,
                                             self.beta)
            for name, value in ret.items():
                prefix = '' if name == 'aAcc' else 'm'
                metrics[f'{branch}.{prefix}{name}'] = float(
                    np.round(np.nanmean(value) * 100, 2))
        summary = ', '.join(f'{k}: {v:.2f}' for k, v in metrics.items()
                            if k in ('mIoU', ) or k.endswith('.mIoU'))
        print_log(
            f'mIoU by branch (ens = fused prediction): {summary}',
            logger='current')
        return metrics

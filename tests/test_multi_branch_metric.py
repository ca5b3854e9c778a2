"""MultiBranchIoUMetric: the ensemble exactly as mmseg's IoUMetric, each
branch as an IoUMetric of that branch's prediction, same label files."""
import os

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmseg.evaluation.metrics import IoUMetric
from PIL import Image

from geminifusion_mmseg.evaluation.metrics import MultiBranchIoUMetric

CLASSES = ('a', 'b', 'c', 'd')


def _samples(seed, n=3, with_branches=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        gt = torch.randint(0, 4, (1, 6, 7), generator=g)
        gt[0, 0, :3] = 255  # ignored pixels
        sample = dict(
            img_path=f'/data/rgb/img_{seed}_{i}.jpg',
            gt_sem_seg=dict(data=gt),
            pred_sem_seg=dict(
                data=torch.randint(0, 4, (1, 6, 7), generator=g)))
        if with_branches:
            for branch in ('rgb', 'depth'):
                sample[f'pred_sem_seg_{branch}'] = dict(
                    data=torch.randint(0, 4, (1, 6, 7), generator=g))
        out.append(sample)
    return out


def _evaluate(metric, batches):
    metric.dataset_meta = dict(classes=CLASSES)
    for batch in batches:
        metric.process({}, batch)
    return metric.evaluate(sum(len(b) for b in batches))


def _as_ensemble(batch, branch):
    return [dict(s, pred_sem_seg=s[f'pred_sem_seg_{branch}']) for s in batch]


def test_scores_equal_iou_metric_per_prediction(tmp_path):
    MMLogger.get_instance('test_multi_branch_metric')
    batches = [_samples(0), _samples(1, n=2)]
    out_multi, out_ref = tmp_path / 'multi', tmp_path / 'ref'
    multi = MultiBranchIoUMetric(
        iou_metrics=['mIoU'], output_dir=str(out_multi))
    got = _evaluate(multi, batches)
    assert multi.format_only is False
    ref = _evaluate(
        IoUMetric(iou_metrics=['mIoU'], output_dir=str(out_ref)), batches)
    for key, value in ref.items():  # aAcc, mIoU, mAcc
        assert got[key] == value, key
    for branch in ('rgb', 'depth'):
        ref_branch = _evaluate(
            IoUMetric(iou_metrics=['mIoU']),
            [_as_ensemble(b, branch) for b in batches])
        for key in ('aAcc', 'mIoU', 'mAcc'):
            assert got[f'{branch}.{key}'] == pytest.approx(
                float(ref_branch[key]), abs=1e-9), (branch, key)
    assert sorted(got) == sorted(
        list(ref) + [
            f'{b}.{k}' for b in ('rgb', 'depth')
            for k in ('mIoU', 'mAcc', 'aAcc')
        ])
    # the label files are those IoUMetric writes
    names = sorted(os.listdir(out_ref))
    assert names == sorted(os.listdir(out_multi)) and len(names) == 5
    for name in names:
        assert np.array_equal(
            np.asarray(Image.open(out_multi / name)),
            np.asarray(Image.open(out_ref / name)))


def test_without_branch_predictions_only_the_ensemble_is_scored():
    got = _evaluate(MultiBranchIoUMetric(), [_samples(2, with_branches=False)])
    assert 'mIoU' in got and not any('.' in k for k in got)


def test_format_only_writes_label_files_and_no_scores(tmp_path):
    metric = MultiBranchIoUMetric(format_only=True, output_dir=str(tmp_path))
    batch = _samples(3)
    for sample in batch:
        del sample['gt_sem_seg']  # a test set without labels
    got = _evaluate(metric, [batch])
    assert got == {} and metric.format_only is True
    assert len(os.listdir(tmp_path)) == 3

"""The release's evaluation path, literally (a test oracle).

What ``main.py --evaluate`` of the GeminiFusion release (NYUDv2 / SUN RGB-D
code line) does to score a model, step by step, written as its code reads:

* ``utils/datasets.py`` ``SegDataset``: a list line
  ``rgb<TAB>mask<TAB>depth``; RGB and depth read with Pillow
  (``np.array(Image.open(p))``, a one-channel image tiled to 3 channels);
  the mask read with Pillow (NYUDv2) or OpenCV grey (SUN RGB-D, then
  ``mask -= 1`` on uint8, so 0 -> 255);
* ``utils/transforms.py`` ``ToTensor``: (C, H, W) float tensors, mask long;
* ``utils/augmentations_mm.py`` ``Resize``: short side to 480 (``round``),
  then both sides up to a multiple of 32, each step with torchvision's
  ``TF.resize`` (bilinear for the images, nearest for the mask);
  ``Normalize``: RGB / 255 then ImageNet mean/std, depth / 255;
* ``main.py`` ``validate``: for every output (rgb, depth, ens) the
  1/4-resolution logits ``output[0, :num_classes]`` upsampled to the mask
  size by ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)``, argmax,
  ``confusion_matrix(gt[gt < n], pred[gt < n], n)`` accumulated over the
  set, then ``getScores`` (``utils/helpers.py``).

torchvision is not a dependency here: :func:`tv_resize` is what
``torchvision.transforms.functional.resize`` does to a tensor in the
torchvision of the release (antialiasing off for tensors before 0.17):
``F.interpolate`` with ``align_corners=False``, integer tensors cast to
float32 and rounded back. A test oracle, never used by the plugin.
"""
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SCALE = {'nyudv2': (480, 640), 'sunrgbd': (480, 480)}
NUM_CLASSES = {'nyudv2': 40, 'sunrgbd': 37}


def read_image(path: str) -> np.ndarray:
    """``SegDataset.read_image``: Pillow, grey tiled to (H, W, 3)."""
    img_arr = np.array(Image.open(path))
    if len(img_arr.shape) == 2:
        img_arr = np.tile(img_arr, [3, 1, 1]).transpose(1, 2, 0)
    return img_arr


def read_sample(root: str, line: str, dataset: str) -> Dict[str, np.ndarray]:
    """``SegDataset.__getitem__`` before its transforms (no fallback for
    missing SUN RGB-D masks: the test data has them all)."""
    names = [osp.join(root, p) for p in line.strip('\n').split('\t')]
    rgb_idx, depth_idx, mask_idx = 0, 2, 1  # input_mask_idxs = [0, 2, 1]
    sample = {
        'rgb': read_image(names[rgb_idx]),
        'depth': read_image(names[depth_idx])
    }
    if dataset == 'nyudv2':
        mask = np.array(Image.open(names[mask_idx]))
    else:
        mask = np.array(
            cv2.imread(names[mask_idx], cv2.IMREAD_GRAYSCALE), dtype=np.uint8)
        mask -= 1
    sample['mask'] = mask
    return sample


def to_tensor(sample: dict) -> dict:
    """``ToTensor``: images (3, H, W) float32, mask (H, W) int64."""
    for key in ('rgb', 'depth'):
        sample[key] = torch.from_numpy(sample[key].transpose(
            (2, 0, 1)).astype(np.float32))
    sample['mask'] = torch.from_numpy(sample['mask'].astype(np.int64))
    return sample


def tv_resize(img: torch.Tensor, size: Tuple[int, int],
              mode: str) -> torch.Tensor:
    """torchvision's tensor ``resize`` (C, H, W) -> (C, h, w) of its time:
    no antialiasing; integer tensors go through float32 and are rounded."""
    dtype = img.dtype
    x = img.float() if not dtype.is_floating_point else img
    align = None if mode == 'nearest' else False
    x = F.interpolate(x[None], size=size, mode=mode, align_corners=align)[0]
    if not dtype.is_floating_point:
        x = x.round().to(dtype)
    return x


def resize(sample: dict, size: int = 480) -> dict:
    """``augmentations_mm.Resize``: short side to ``size``, then up to a
    multiple of 32, both steps for every key."""
    H, W = sample['rgb'].shape[1:]
    scale_factor = size / min(H, W)
    nH, nW = round(H * scale_factor), round(W * scale_factor)
    alignH, alignW = int(np.ceil(nH / 32)) * 32, int(np.ceil(nW / 32)) * 32
    for target in ((nH, nW), (alignH, alignW)):
        for k, v in sample.items():
            if k == 'mask':
                sample[k] = tv_resize(v.unsqueeze(0), target,
                                      'nearest').squeeze(0)
            else:
                sample[k] = tv_resize(v, target, 'bilinear')
    return sample


def normalize(sample: dict) -> dict:
    """``augmentations_mm.Normalize``: RGB /255 + ImageNet mean/std, other
    inputs /255, mask untouched."""
    for k in sample:
        if k == 'mask':
            continue
        sample[k] = sample[k].float() / 255
        if k == 'rgb':
            mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
            std = torch.tensor(IMAGENET_STD)[:, None, None]
            sample[k] = (sample[k] - mean) / std
    return sample


def confusion_matrix(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """``utils/helpers.confusion_matrix`` (rows: ground truth x, columns:
    prediction y)."""
    k = (x >= 0) & (y < n)
    return np.bincount(
        n * x[k].astype(int) + y[k], minlength=n**2).reshape(n, n)


def get_scores(conf: np.ndarray) -> Tuple[float, float, float, np.ndarray]:
    """``utils/helpers.getScores`` plus the per-class IoU it averages.

    Returns:
        tuple: global acc (%), mean class acc (%), mIoU (%), and the
        per-class IoU (%) with NaN for classes absent from both.
    """
    with np.errstate(divide='ignore', invalid='ignore'):
        overall = np.diag(conf).sum() / np.float64(conf.sum())
        perclass = np.diag(conf) / conf.sum(1).astype(np.float64)
        iu = np.diag(conf) / (conf.sum(1) + conf.sum(0) -
                              np.diag(conf)).astype(np.float64)
    return (overall * 100., np.nanmean(perclass) * 100., np.nanmean(iu) * 100.,
            iu * 100.)


def validate(segmenter: torch.nn.Module, root: str, lines: Sequence[str],
             dataset: str) -> List[dict]:
    """``main.py validate`` over the list ``lines`` of ``root``.

    Args:
        segmenter: The literal published model: ``[rgb, depth]`` (each
            (1, 3, H, W)) -> ``[logits_rgb, logits_depth, ens]`` at 1/4.
        root (str): Data root.
        lines (Sequence[str]): List-file lines.
        dataset (str): 'nyudv2' or 'sunrgbd'.

    Returns:
        list[dict]: Per output (rgb, depth, ens): ``miou`` (%) and ``iou``
        (per-class %, NaN where a class is in neither the labels nor the
        prediction).
    """
    num_classes = NUM_CLASSES[dataset]
    conf_mat = [
        np.zeros((num_classes, num_classes), dtype=int) for _ in range(3)
    ]
    segmenter.eval()
    with torch.no_grad():
        for line in lines:
            sample = normalize(
                resize(
                    to_tensor(read_sample(root, line, dataset)),
                    INPUT_SCALE[dataset][0]))
            inputs = [sample[k][None].float() for k in ('rgb', 'depth')]
            target = sample['mask'][None]
            gt = target[0].data.cpu().numpy().astype(np.uint8)
            gt_idx = gt < num_classes
            outputs = segmenter(inputs)
            for idx, output in enumerate(outputs):
                output = cv2.resize(
                    output[0, :num_classes].data.cpu().numpy().transpose(
                        1, 2, 0),
                    target.size()[1:][::-1],
                    interpolation=cv2.INTER_CUBIC).argmax(axis=2).astype(
                        np.uint8)
                conf_mat[idx] += confusion_matrix(gt[gt_idx], output[gt_idx],
                                                  num_classes)
    results = []
    for conf in conf_mat:
        _, _, miou, iou = get_scores(conf)
        results.append(dict(miou=miou, iou=iou))
    return results

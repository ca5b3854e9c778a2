"""Test-time augmentation (multi-scale + flip) for multimodal segmentors."""
from typing import List

import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import SampleList

_MERGE_MODES = ('logits', 'probs')


@MODELS.register_module(name=['MultiModalSegTTAModel', 'RGBDSegTTAModel'])
class MultiModalSegTTAModel(BaseTTAModel):
    """Merge the predictions of a ``TestTimeAug`` pipeline (``--tta``).

    For any modality set (nothing here is RGB-D specific). Registered as
    ``MultiModalSegTTAModel`` and, for configs of earlier versions,
    ``RGBDSegTTAModel`` (the same class).

    mmseg's :class:`~mmseg.models.SegTTAModel` with two changes:

    - ``merge='logits'`` (the default) averages the logits of the
      augmented views, the multi-scale + flip protocol of the RGB-D papers;
      ``merge='probs'`` averages softmax probabilities as ``SegTTAModel``
      (and mmseg 0.x ``aug_test``) do. The two rarely disagree by more
      than noise.
    - The merged sample is a fresh :class:`SegDataSample`: it keeps the
      merged ``seg_logits`` (logits, or log of the averaged probabilities),
      ``pred_sem_seg``, ``gt_sem_seg`` and the metainfo of the first view,
      and drops the per-modality predictions (``pred_sem_seg_rgb`` ...)
      that :class:`MultiModalEncoderDecoder` attaches to each view.
      ``SegTTAModel`` would pass on those of the LAST view (e.g. scale 1.75,
      flipped), so a branch metric would silently score one view; here
      :class:`MultiBranchIoUMetric` scores the fused prediction only.

    Every view's ``seg_logits`` has already been flipped back and resized
    to ``ori_shape`` by the segmentor's ``postprocess_result``, so the
    merge happens at the original label size.

    Args:
        module (dict | nn.Module): The segmentor.
        merge (str): 'logits' or 'probs'. Defaults to 'logits'.
        data_preprocessor: See :class:`mmengine.model.BaseTTAModel`.
    """

    def __init__(self, module, merge: str = 'logits', **kwargs) -> None:
        if merge not in _MERGE_MODES:
            raise ValueError(f'MultiModalSegTTAModel: merge must be one of '
                             f'{_MERGE_MODES}, got {merge!r}')
        super().__init__(module, **kwargs)
        self.merge = merge

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        """Merge the views of each image into one prediction.

        Args:
            data_samples_list (list[list[SegDataSample]]): For each image,
                the predictions of all its views.

        Returns:
            list[SegDataSample]: One merged prediction per image.
        """
        predictions = []
        for views in data_samples_list:
            logits = torch.stack([v.seg_logits.data for v in views])
            if logits.shape[1] == 1:
                raise ValueError(
                    'MultiModalSegTTAModel merges multi-class logits; '
                    'use SegTTAModel for a 1-channel head')
            if self.merge == 'logits':
                merged = logits.mean(dim=0)
            else:
                merged = logits.softmax(dim=1).mean(dim=0).log()
            first = views[0]
            result = SegDataSample(metainfo=first.metainfo)
            result.seg_logits = PixelData(data=merged)
            result.pred_sem_seg = PixelData(
                data=merged.argmax(dim=0, keepdim=True))
            if 'gt_sem_seg' in first:
                result.gt_sem_seg = first.gt_sem_seg
            predictions.append(result)
        return predictions


#: The earlier name of :class:`MultiModalSegTTAModel` (the same class).
RGBDSegTTAModel = MultiModalSegTTAModel

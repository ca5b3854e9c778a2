"""Write RGB | depth (| more sensors) | ground truth | prediction panels
while testing."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook
from mmseg.registry import HOOKS
from mmseg.structures import SegDataSample

from ...utils.atomic_io import atomic_output
from ...visualization import make_multimodal_panel, make_rgbd_panel


def _modalities(dataloader) -> Optional[Sequence[str]]:
    """The ``modalities`` of a dataloader's dataset, if it has them."""
    return getattr(getattr(dataloader, 'dataset', None), 'modalities', None)


@HOOKS.register_module()
class RGBDVisualizationHook(Hook):
    """Save one panel per test (or validation) sample.

    The RGB and depth tiles come from the network input of the sample
    (``data_batch['inputs']``, channels [0:3] RGB and [3] depth, before
    normalisation); ground truth and prediction from the output
    :class:`SegDataSample`. Files are ``<out_dir>/<image stem>.png``.
    An input of 3K > 6 channels (K sensors) gets one tile per sensor,
    titled with the dataset's ``modalities`` when it has them.

    Args:
        out_dir (str): Folder for the panels (created if missing).
        interval (int): Save every ``interval``-th batch. Defaults to 1.
        draw_val (bool): Also save during validation. Defaults to False.
    """

    def __init__(self,
                 out_dir: str,
                 interval: int = 1,
                 draw_val: bool = False):
        self.out_dir = out_dir
        self.interval = interval
        self.draw_val = draw_val

    def _draw(self,
              evaluator,
              batch_idx: int,
              data_batch: dict,
              outputs: Sequence[SegDataSample],
              modalities: Optional[Sequence[str]] = None) -> None:
        if batch_idx % self.interval != 0:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        palette = (evaluator.dataset_meta or {}).get('palette')
        for inputs, sample in zip(data_batch['inputs'], outputs):
            image = inputs.permute(1, 2, 0).cpu().float().numpy()
            maps = []
            if 'gt_sem_seg' in sample:
                maps.append(
                    ('ground truth', sample.gt_sem_seg.data[0].cpu().numpy()))
            maps.append(
                ('prediction', sample.pred_sem_seg.data[0].cpu().numpy()))
            if palette is None:
                num = int(max(m.max() for _, m in maps if m.size)) + 1
                palette = np.random.RandomState(0).randint(0, 255, (num, 3))
            channels = image.shape[2]
            if channels > 6 and channels % 3 == 0:
                names = modalities
                if names is None or 3 * len(names) != channels:
                    names = ['rgb'] + [
                        f'modality {i}' for i in range(1, channels // 3)
                    ]
                panel = make_multimodal_panel(image, names, maps, palette)
            else:
                panel = make_rgbd_panel(image[..., :3], image[..., 3], maps,
                                        palette)
            stem = osp.splitext(osp.basename(sample.img_path))[0]
            path = osp.join(self.out_dir, f'{stem}.png')
            with atomic_output(path, what='panel') as tmp:
                if not cv2.imwrite(tmp, panel[..., ::-1]):
                    raise OSError(f'could not write the panel {path}')

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        self._draw(runner.test_evaluator, batch_idx, data_batch, outputs,
                   _modalities(runner.test_dataloader))

    def after_val_iter(self,
                       runner,
                       batch_idx,
                       data_batch=None,
                       outputs=None) -> None:
        if self.draw_val:
            self._draw(runner.val_evaluator, batch_idx, data_batch, outputs,
                       _modalities(runner.val_dataloader))

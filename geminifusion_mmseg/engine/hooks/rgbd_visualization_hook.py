"""Draw RGB | depth (| more sensors) | ground truth | prediction panels
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


def _network_inputs(data_batch: dict) -> list:
    """One network input (C, H, W) per sample of ``data_batch``.

    With test-time augmentation (``--tta``) ``data_batch['inputs']`` holds
    views x samples; the largest unflipped view of each sample is used.
    """
    inputs = data_batch['inputs']
    if not inputs or not isinstance(inputs[0], (list, tuple)):
        return list(inputs)
    views = data_batch['data_samples']
    picked = []
    for b in range(len(inputs[0])):
        unflipped = [(v[b].shape[-2] * v[b].shape[-1], i)
                     for i, v in enumerate(inputs)
                     if not views[i][b].metainfo.get('flip', False)]
        picked.append(inputs[max(unflipped)[1] if unflipped else 0][b])
    return picked


@HOOKS.register_module()
class RGBDVisualizationHook(Hook):
    """Draw one RGB | depth (| more sensors) | ground truth | prediction
    panel per test (or validation) sample.

    The RGB and depth tiles come from the network input of the sample
    (``data_batch['inputs']``, channels [0:3] RGB and [3] depth, before
    normalisation; with ``--tta`` its largest unflipped view); ground truth
    and prediction from the output :class:`SegDataSample`. An input of
    3K > 6 channels (K sensors) gets one tile per sensor, titled with the
    dataset's ``modalities`` when it has them; a 3-channel input (an
    RGB-only model) an RGB tile.

    Where the panels go follows mmseg's ``SegVisualizationHook``, so the
    configs' ``default_hooks.visualization`` works with mmseg's
    ``tools/test.py --show-dir / --show`` (which set ``draw``, ``show``,
    ``wait_time`` here and ``visualizer.save_dir``):

    * ``out_dir`` given: ``<out_dir>/<image stem>.png`` (this plugin's
      ``tools/test.py --show-dir``);
    * ``show=True``: shown in a window (``runner.visualizer.show``) for
      ``wait_time`` seconds;
    * otherwise: ``runner.visualizer.add_image('test_<image file name>',
      panel, step)``, i.e. with the default ``LocalVisBackend``
      ``<visualizer save_dir>/vis_data/vis_image/test_<name>_<step>.png``,
      where mmseg's ``--show-dir`` puts its images.

    Args:
        out_dir (str, optional): Folder for the panels (created if missing).
            Defaults to None (the visualizer's backends).
        interval (int): Draw every ``interval``-th batch. Defaults to 1.
        draw_val (bool): Also draw during validation. Defaults to False.
        draw (bool): Draw at all. ``default_hooks.visualization`` sets it to
            False (the test tools switch it on). Defaults to True.
        show (bool): Show each panel in a window. Defaults to False.
        wait_time (float): Seconds each shown panel stays (``show``).
            Defaults to 0.
    """

    def __init__(self,
                 out_dir: Optional[str] = None,
                 interval: int = 1,
                 draw_val: bool = False,
                 draw: bool = True,
                 show: bool = False,
                 wait_time: float = 0.):
        self.out_dir = out_dir
        self.interval = interval
        self.draw_val = draw_val
        self.draw = draw
        self.show = show
        self.wait_time = wait_time
        self._step = 0

    def _draw(self,
              runner,
              mode: str,
              evaluator,
              batch_idx: int,
              data_batch: dict,
              outputs: Sequence[SegDataSample],
              modalities: Optional[Sequence[str]] = None) -> None:
        if not self.draw or batch_idx % self.interval != 0:
            return
        if self.out_dir is not None:
            os.makedirs(self.out_dir, exist_ok=True)
        palette = (evaluator.dataset_meta or {}).get('palette')
        for inputs, sample in zip(_network_inputs(data_batch), outputs):
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
            if channels == 3 or (channels > 6 and channels % 3 == 0):
                names = modalities
                if names is None or 3 * len(names) != channels:
                    names = ['rgb'] + [
                        f'modality {i}' for i in range(1, channels // 3)
                    ]
                panel = make_multimodal_panel(image, names, maps, palette)
            else:
                panel = make_rgbd_panel(image[..., :3], image[..., 3], maps,
                                        palette)
            self._step += 1
            name = f'{mode}_{osp.basename(sample.img_path)}'
            if self.show:
                runner.visualizer.show(
                    panel, win_name=name, wait_time=self.wait_time)
            if self.out_dir is not None:
                stem = osp.splitext(osp.basename(sample.img_path))[0]
                path = osp.join(self.out_dir, f'{stem}.png')
                with atomic_output(path, what='panel') as tmp:
                    if not cv2.imwrite(tmp, panel[..., ::-1]):
                        raise OSError(f'could not write the panel {path}')
            elif not self.show:
                runner.visualizer.add_image(name, panel, step=self._step)

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        self._draw(runner, 'test', runner.test_evaluator, batch_idx,
                   data_batch, outputs, _modalities(runner.test_dataloader))

    def after_val_iter(self,
                       runner,
                       batch_idx,
                       data_batch=None,
                       outputs=None) -> None:
        if self.draw_val:
            self._draw(runner, 'val', runner.val_evaluator, batch_idx,
                       data_batch, outputs, _modalities(runner.val_dataloader))

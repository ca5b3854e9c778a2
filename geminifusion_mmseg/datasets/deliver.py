"""DeLiVER (RGB + depth / event / LiDAR, 25 classes)."""
from typing import List, Optional, Sequence, Tuple, Union

import mmengine.fileio as fileio
from mmseg.registry import DATASETS

from .multimodal_dataset import MultiModalSegDataset

DELIVER_CLASSES = ('Building', 'Fence', 'Other', 'Pedestrian', 'Pole',
                   'RoadLine', 'Road', 'SideWalk', 'Vegetation', 'Cars',
                   'Wall', 'TrafficSign', 'Sky', 'Ground', 'Bridge',
                   'RailTrack', 'GroundRail', 'TrafficLight', 'Static',
                   'Dynamic', 'Water', 'Terrain', 'TwoWheeler', 'Bus', 'Truck')

DELIVER_PALETTE = [[70, 70, 70], [100, 40, 40], [55, 90, 80], [220, 20, 60],
                   [153, 153, 153], [157, 234, 50], [128, 64, 128],
                   [244, 35, 232], [107, 142, 35], [0, 0, 142],
                   [102, 102, 156], [220, 220, 0], [70, 130, 180], [81, 0, 81],
                   [150, 100, 100], [230, 150, 140], [180, 165, 180],
                   [250, 170, 30], [110, 190, 160], [170, 120, 50],
                   [45, 60, 150], [145, 170, 100], [0, 0, 230], [0, 60, 100],
                   [0, 0, 70]]

#: The adverse conditions (folders) and sensor-failure cases of DeLiVER.
DELIVER_CONDITIONS = ('cloud', 'fog', 'night', 'rain', 'sun')
DELIVER_FAILURES = ('motionblur', 'overexposure', 'underexposure',
                    'lidarjitter', 'eventlowres')
DELIVER_CASES = DELIVER_CONDITIONS + DELIVER_FAILURES

#: Modality -> (folder, file-name tag replacing ``_rgb``).
DELIVER_FOLDERS = dict(
    rgb=('img', '_rgb'),
    depth=('hha', '_depth'),
    event=('event', '_event'),
    lidar=('lidar', '_lidar'))
DELIVER_LABEL_FOLDER = ('semantic', '_semantic')
DELIVER_SPLITS = ('train', 'val', 'test')


def deliver_partner(rel_rgb: str, folder: str, tag: str) -> str:
    """The partner of an RGB file, as DeLiVER's reader derives it.

    ``rel_rgb`` is the RGB file's path below the data root
    (``img/<condition>/<split>/<sequence>/<name>.png``); the partner is
    ``rel.replace('/img', '/<folder>').replace('_rgb', '<tag>')`` applied
    to ``'/' + rel_rgb`` -- the string replacements of the reference code
    on the part of the path below the root.
    """
    path = '/' + rel_rgb
    path = path.replace('/img', '/' + folder).replace('_rgb', tag)
    return path[1:]


@DATASETS.register_module()
class DeLiVERDataset(MultiModalSegDataset):
    """DeLiVER: RGB, depth, event and LiDAR in CARLA, 25 classes.

    The folder layout of the CMNeXt release (``data/DELIVER``):

    .. code-block:: none

        DELIVER
        ├── img/<condition>/<split>/<sequence>/<id>_rgb_<view>.png
        ├── hha/...      *_depth_*.png   (the 'depth' modality)
        ├── event/...    *_event_*.png   (lower resolution in eventlowres)
        ├── lidar/...    *_lidar_*.png
        └── semantic/... *_semantic_*.png (0 / 255 void, 1..25 classes)

    with the conditions ``cloud``, ``fog``, ``night``, ``rain``, ``sun`` and
    the splits ``train``, ``val``, ``test``. The samples are the sorted
    ``img/*/<split>/*/*.png``; each partner file is the RGB path with
    ``/img`` -> ``/hha`` (``/event``, ``/lidar``, ``/semantic``) and
    ``_rgb`` -> ``_depth`` (``_event``, ``_lidar``, ``_semantic``), as the
    reference reader does (here on the path below ``data_root`` only).

    Labels as published: 255 -> 0, then ``-= 1`` on uint8, i.e. 0 and 255
    -> 255 (ignored), 1..25 -> 0..24: ``reduce_zero_label=True`` (the
    default) does exactly this. The label is the first channel of the
    label file (:class:`LoadMultiModalAnnotations`).

    ``case`` selects the adverse-condition or sensor-failure subset(s) to
    score alone: one of :data:`DELIVER_CASES` or a list of them (union).
    As the reference reader, a sample is selected when the case name is a
    substring of its path -- here the path below ``data_root`` WITHOUT the
    split folder, so that ``'rain'`` does not select all of ``train/``
    (the only difference: with ``split='train'`` the reference's
    ``case='rain'`` keeps every file).

    Example::

        dict(type='DeLiVERDataset', data_root='data/DELIVER', split='val',
             modalities=['rgb', 'depth', 'event', 'lidar'], case='night')

    Args:
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        modalities (Sequence[str]): Any of 'rgb', 'depth', 'event',
            'lidar', RGB first, in channel order. Defaults to
            ``('rgb', 'depth', 'event', 'lidar')``.
        case (str | Sequence[str], optional): Subset(s), see above. None
            (default) takes every sample of the split.
        reduce_zero_label (bool): Defaults to True (see above).
        check_files (bool): Check at construction that every file exists.
            Defaults to True.
        **kwargs: Other arguments of :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``pipeline``, ``test_mode``, ``backend_args``
            ...). ``ann_file`` and ``data_prefix`` are not used.
    """
    METAINFO = dict(classes=DELIVER_CLASSES, palette=DELIVER_PALETTE)
    SUPPORTED_MODALITIES = tuple(DELIVER_FOLDERS)

    def __init__(self,
                 split: str = 'train',
                 modalities: Sequence[str] = ('rgb', 'depth', 'event',
                                              'lidar'),
                 case: Optional[Union[str, Sequence[str]]] = None,
                 reduce_zero_label: bool = True,
                 check_files: bool = True,
                 **kwargs) -> None:
        if split not in DELIVER_SPLITS:
            raise ValueError(f'DeLiVERDataset: split must be one of '
                             f'{DELIVER_SPLITS}, got {split!r}.')
        self.split = split
        self.cases = self._check_cases(case)
        kwargs.setdefault('data_prefix', dict(img_path='', seg_map_path=''))
        super().__init__(
            modalities=modalities,
            check_files=check_files,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    @staticmethod
    def _check_cases(
        case: Optional[Union[str,
                             Sequence[str]]]) -> Optional[Tuple[str, ...]]:
        if case is None:
            return None
        cases = (case, ) if isinstance(case, str) else tuple(case)
        if not cases:
            raise ValueError('DeLiVERDataset: case is an empty list; use '
                             'None for all samples.')
        for c in cases:
            if c not in DELIVER_CASES:
                raise ValueError(
                    f'DeLiVERDataset: unknown case {c!r}; choose from the '
                    f'conditions {list(DELIVER_CONDITIONS)} and the sensor '
                    f'failures {list(DELIVER_FAILURES)} (or a list of them, '
                    'or None for all).')
        return cases

    def _join(self, rel: str) -> str:
        return fileio.join_path(self.data_root, rel,
                                backend_args=self.backend_args) \
            if self.data_root else rel

    def _rgb_files(self) -> List[str]:
        """Sorted ``img/<condition>/<split>/<sequence>/<file>.png`` below
        ``data_root``, as ``glob(root/img/*/split/*/*.png)``."""
        img_dir = self._join('img')
        if not self._isdir(img_dir, self.backend_args):
            raise FileNotFoundError(
                f'DeLiVERDataset: RGB folder {img_dir} does not exist (the '
                'layout is <data_root>/img/<condition>/<split>/<sequence>/'
                '*_rgb*.png).')
        files = []
        for rel in fileio.list_dir_or_file(
                dir_path=img_dir,
                list_dir=False,
                suffix='.png',
                recursive=True,
                backend_args=self.backend_args):
            parts = rel.replace('\\', '/').split('/')
            if len(parts) == 4 and parts[1] == self.split:
                files.append('img/' + '/'.join(parts))
        return sorted(files)

    def _selected(self, rel: str) -> bool:
        if self.cases is None:
            return True
        parts = rel.split('/')  # img, condition, split, sequence, file
        searched = '/'.join(parts[:2] + parts[3:])
        return any(c in searched for c in self.cases)

    def load_data_list(self) -> List[dict]:
        """The samples of the split (and case).

        Returns:
            list[dict]: All data infos of the dataset.
        """
        files = self._rgb_files()
        if not files:
            raise ValueError(f'DeLiVERDataset: no images found in '
                             f"{self._join('img')}/*/{self.split}/*/*.png.")
        files = [f for f in files if self._selected(f)]
        if not files:
            raise ValueError(
                f'DeLiVERDataset: no {self.split} images of the case(s) '
                f'{list(self.cases)} in {self._join("img")}.')
        data_list, missing = [], []
        for rel in files:
            paths = {
                m: self._join(deliver_partner(rel, *DELIVER_FOLDERS[m]))
                for m in self.modalities
            }
            paths['rgb'] = self._join(rel)
            seg = self._join(deliver_partner(rel, *DELIVER_LABEL_FOLDER))
            missing += self._missing_files(f'sample {paths["rgb"]}', paths,
                                           seg)
            data_list.append(self._make_info(paths, seg))
        self._raise_missing(missing)
        return data_list

"""MFNet (RGB-thermal, 9 classes)."""
from typing import List, Sequence

import mmengine.fileio as fileio
from mmseg.registry import DATASETS

from .list_file import read_list_file
from .multimodal_dataset import MultiModalSegDataset

MFNET_CLASSES = ('unlabeled', 'car', 'person', 'bike', 'curve', 'car_stop',
                 'guardrail', 'color_cone', 'bump')

# The reference code lists 8 colours for its 9 classes: MFNet's own colours
# of car .. bump. Here 'unlabeled' (class 0, a class that is trained and
# scored, not ignored) gets black, as in MFNet's own visualisation, and the
# 8 colours follow for classes 1..8.
MFNET_PALETTE = [[0, 0, 0], [64, 0, 128], [64, 64, 0], [0, 128, 192],
                 [0, 0, 192], [128, 128, 0], [64, 64, 128], [192, 128, 128],
                 [192, 64, 0]]


@DATASETS.register_module()
class MFNetDataset(MultiModalSegDataset):
    """MFNet RGB-thermal urban scenes, 9 classes ('unlabeled' is class 0).

    The layout read by the GeminiFusion DeLiVER branch (CMNeXt's MFNet
    reader with PNG files):

    .. code-block:: none

        MFNet
        ├── rgb/<name>.png      (RGB; a 4-channel RGB-T PNG gives its RGB)
        ├── ther/<name>.png     (thermal; grey, or a 4-channel RGB-T PNG
        │                        whose 4th channel is the thermal image)
        ├── labels/<name>.png   (0..8, 255 = ignore)
        ├── train.txt
        └── test.txt            (the 'val' split)

    A list line names a sample: its first space-separated token (the rest
    of the line is ignored); blank lines are skipped. CMNeXt's own reader
    takes ``rgb/<name>.jpg`` and ``ther/<name>.jpg``: set
    ``img_suffix='.jpg', thermal_suffix='.jpg'``.

    Labels are used as stored: class 0 'unlabeled' is a class, 255 is
    ignored (``reduce_zero_label=False``). Read the thermal images with the
    encoding ``'thermal'`` of :class:`LoadMultiModalImageFromFile` (its
    default for the modality 'thermal').

    Example::

        dict(type='MFNetDataset', data_root='data/MFNet', split='val',
             modalities=['rgb', 'thermal'])

    Args:
        split (str): 'train' (``train.txt``) or 'val' (``test.txt``); or
            give ``ann_file``. Defaults to 'train'.
        ann_file (str): List file relative to ``data_root``; '' takes the
            split's. Defaults to ''.
        modalities (Sequence[str]): ``('rgb', 'thermal')`` or ``('rgb',)``.
            Defaults to ``('rgb', 'thermal')``.
        img_suffix (str): Defaults to '.png'.
        thermal_suffix (str): Defaults to '.png'.
        seg_map_suffix (str): Defaults to '.png'.
        data_prefix (dict): Folders ``img_path``, ``thermal_path``,
            ``seg_map_path``. Defaults to
            ``dict(img_path='rgb', thermal_path='ther',
            seg_map_path='labels')``.
        check_files (bool): Check at construction that every listed file
            exists. Defaults to True.
        **kwargs: Other arguments of :class:`mmseg.datasets.BaseSegDataset`.
    """
    METAINFO = dict(classes=MFNET_CLASSES, palette=MFNET_PALETTE)
    SUPPORTED_MODALITIES = ('rgb', 'thermal')
    SPLIT_FILES = dict(train='train.txt', val='test.txt')

    def __init__(self,
                 split: str = 'train',
                 ann_file: str = '',
                 modalities: Sequence[str] = ('rgb', 'thermal'),
                 img_suffix: str = '.png',
                 thermal_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(
                     img_path='rgb',
                     thermal_path='ther',
                     seg_map_path='labels'),
                 reduce_zero_label: bool = False,
                 check_files: bool = True,
                 **kwargs) -> None:
        if split not in self.SPLIT_FILES:
            raise ValueError(f'MFNetDataset: split must be one of '
                             f'{tuple(self.SPLIT_FILES)}, got {split!r}.')
        self.split = split
        self.thermal_suffix = thermal_suffix
        data_prefix = dict(data_prefix)
        for key in ('img_path', 'thermal_path'):
            if key not in data_prefix:
                raise ValueError(
                    f"MFNetDataset: data_prefix must name '{key}', got "
                    f'{data_prefix}.')
        super().__init__(
            modalities=modalities,
            check_files=check_files,
            ann_file=ann_file or self.SPLIT_FILES[split],
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    def _path(self, key: str, name: str, suffix: str) -> str:
        return fileio.join_path(
            self.data_prefix[key],
            name + suffix,
            backend_args=self.backend_args)

    def load_data_list(self) -> List[dict]:
        """The samples named by the list file.

        Returns:
            list[dict]: All data infos of the dataset.
        """
        if not self._exists(self.ann_file):
            raise FileNotFoundError(
                f'MFNetDataset: list file (ann_file) {self.ann_file} does '
                'not exist.')
        lines = read_list_file(self.ann_file, self.backend_args,
                               'MFNetDataset')
        data_list, missing = [], []
        for lineno, line in enumerate(lines, start=1):
            line = line.strip()
            if not line:
                continue
            name = line.split()[0]
            paths = dict(
                rgb=self._path('img_path', name, self.img_suffix),
                thermal=self._path('thermal_path', name, self.thermal_suffix))
            seg = None
            if self.data_prefix.get('seg_map_path') is not None:
                seg = self._path('seg_map_path', name, self.seg_map_suffix)
            missing += self._missing_files(f'line {lineno} of {self.ann_file}',
                                           paths, seg)
            data_list.append(self._make_info(paths, seg))
        if not data_list:
            raise ValueError(
                f'MFNetDataset: no samples in the list file {self.ann_file}.')
        self._raise_missing(missing)
        return data_list

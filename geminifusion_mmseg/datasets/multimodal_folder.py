"""RGB + any aligned sensors in one folder per sensor (your own data)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import mmengine.fileio as fileio
from mmseg.registry import DATASETS

from .list_file import read_list_file
from .multimodal_dataset import MultiModalSegDataset


@DATASETS.register_module()
class MultiModalFolderDataset(MultiModalSegDataset):
    """Samples stored as one file per sensor, one folder per sensor.

    .. code-block:: none

        data_root
        ├── rgb/<name>.png        (folder and suffix per modality, see
        ├── depth/<name>.png       ``modality_dirs`` / ``modality_suffixes``)
        ├── thermal/<name>.png
        ├── labels/<name>.png     (class indices; 255 = ignore)
        ├── train.txt             one <name> per line (first token)
        └── val.txt

    ``<name>`` may contain sub-folders (``scene1/000001``). Every listed
    modality file and the label must exist (checked at construction, the
    error names the list line). With ``ann_file=''`` the samples are the
    files of the RGB folder (recursively, sorted).

    Example::

        dict(type='MultiModalFolderDataset', data_root='data/my_rgbdt',
             ann_file='train.txt', modalities=['rgb', 'depth', 'thermal'],
             metainfo=dict(classes=('background', 'car', 'person')))

    Args:
        modalities (Sequence[str]): Sensors to read, ``'rgb'`` first; any
            names. Their order is the channel order of the input image
            (3 channels each). Defaults to ``('rgb', )``.
        modality_dirs (dict, optional): Folder (relative to ``data_root``)
            of each modality; a modality not in it uses its own name.
        modality_suffixes (dict, optional): File suffix of each modality;
            a modality not in it uses ``img_suffix``.
        img_suffix (str): Defaults to '.png'.
        seg_map_suffix (str): Defaults to '.png'.
        data_prefix (dict): ``seg_map_path``: the label folder (None or
            '': no labels, e.g. for inference). Defaults to
            ``dict(seg_map_path='labels')``.
        check_files (bool): Check at construction that every file exists.
            Defaults to True.
        **kwargs: Other arguments of :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``ann_file``, ``metainfo``, ``pipeline``,
            ``reduce_zero_label``, ...).
    """
    #: None: any modality names (the subclasses may restrict them)
    SUPPORTED_MODALITIES = None

    def __init__(self,
                 modalities: Sequence[str] = ('rgb', ),
                 modality_dirs: Optional[Dict[str, str]] = None,
                 modality_suffixes: Optional[Dict[str, str]] = None,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(seg_map_path='labels'),
                 check_files: bool = True,
                 **kwargs) -> None:
        if self.SUPPORTED_MODALITIES is None:
            self.SUPPORTED_MODALITIES = tuple(modalities)
        names = set(modalities)
        for arg, value in (('modality_dirs', modality_dirs),
                           ('modality_suffixes', modality_suffixes)):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f'{self._name}: {arg} must be a dict '
                                 f'(modality -> str), got {value!r}.')
            extra = sorted(set(value or {}) - names)
            if extra:
                raise ValueError(
                    f'{self._name}: {arg} names {extra}, which are not '
                    f'among the modalities {list(modalities)}.')
        self.modality_dirs = dict(modality_dirs or {})
        self.modality_suffixes = dict(modality_suffixes or {})
        data_prefix = dict(data_prefix)
        # mmengine joins every prefix with data_root and needs strings
        self.has_labels = bool(data_prefix.get('seg_map_path'))
        data_prefix['seg_map_path'] = data_prefix.get('seg_map_path') or ''
        super().__init__(
            modalities=modalities,
            check_files=check_files,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            **kwargs)

    def modality_dir(self, name: str) -> str:
        """The folder of modality ``name`` (joined with ``data_root``)."""
        folder = self.modality_dirs.get(name, name)
        if self.data_root and not osp.isabs(folder):
            folder = fileio.join_path(
                self.data_root, folder, backend_args=self.backend_args)
        return folder

    def _sample_names(self) -> List[tuple]:
        """``(where, name)`` of every sample."""
        if self.ann_file:
            if not self._exists(self.ann_file):
                raise FileNotFoundError(
                    f'{self._name}: list file (ann_file) {self.ann_file} '
                    'does not exist.')
            lines = read_list_file(self.ann_file, self.backend_args,
                                   self._name)
            return [(f'line {i} of {self.ann_file}', line.split()[0])
                    for i, line in enumerate(lines, start=1) if line.strip()]
        rgb_dir = self.modality_dir('rgb')
        suffix = self.modality_suffixes.get('rgb', self.img_suffix)
        files = fileio.list_dir_or_file(
            rgb_dir,
            list_dir=False,
            suffix=suffix,
            recursive=True,
            backend_args=self.backend_args)
        return [(f'{rgb_dir}/{f}', f[:-len(suffix)]) for f in sorted(files)]

    def load_data_list(self) -> List[dict]:
        """One info per sample (see :class:`MultiModalSegDataset`).

        Returns:
            list[dict]: All data infos of the dataset.
        """
        seg_dir = self.data_prefix['seg_map_path'] if self.has_labels \
            else None
        data_list, missing = [], []
        for where, name in self._sample_names():
            paths = {
                m:
                fileio.join_path(
                    self.modality_dir(m),
                    name + self.modality_suffixes.get(m, self.img_suffix),
                    backend_args=self.backend_args)
                for m in self.modalities
            }
            seg = None
            if seg_dir:
                seg = fileio.join_path(
                    seg_dir,
                    name + self.seg_map_suffix,
                    backend_args=self.backend_args)
            missing += self._missing_files(where, paths, seg)
            data_list.append(self._make_info(paths, seg))
        if not data_list:
            source = self.ann_file or self.modality_dir('rgb')
            raise ValueError(f'{self._name}: no samples in {source}.')
        self._raise_missing(missing)
        return data_list

"""A config-driven RGB-D semantic segmentation dataset: the K = 2 case
(``('rgb', 'depth')``) of :class:`MultiModalSegDataset`, with the RGB-D
list-file and pairing-by-name layouts."""
import os.path as osp
from typing import Dict, List, Optional, Tuple

import mmengine.fileio as fileio
from mmseg.registry import DATASETS

from .list_file import check_first_sample, read_list_file
from .modalities import RGBD_MODALITIES
from .multimodal_dataset import MultiModalSegDataset


@DATASETS.register_module()
class RGBDDataset(MultiModalSegDataset):
    """Generic RGB-D semantic segmentation dataset.

    Every sample is an RGB image, a depth image (a raw single-channel depth
    map or a 3-channel encoding such as HHA) and a label map. The samples are
    listed in one of two ways:

    1. ``ann_file`` (a list file, the TokenFusion / GeminiFusion / DFormer
       convention). Blank lines are ignored; columns are separated by any
       whitespace. A line has either

       - three columns ``rgb label depth`` (in that order; a UTF-8
         byte-order mark is ignored), each a path
         relative to ``data_root`` (used as is when ``data_root`` is None);
         ``data_prefix`` and the suffixes are not used, e.g.
         ``rgb/000003.png<TAB>masks/000003.png<TAB>depth/000003.png``;
       - or one column naming a sample: a bare name (``000003``, as in
         mmseg list files) or a path of a file in the image folder
         (``RGB/0.jpg``, as in DFormer lists). The three files are then
         ``{data_prefix[x]}/{name}{x_suffix}``.

    2. No ``ann_file``: every ``*{img_suffix}`` file under
       ``data_prefix['img_path']`` (recursively) is paired by name with
       ``{depth_path}/{name}{depth_suffix}`` and
       ``{seg_map_path}/{name}{seg_map_suffix}``. A file without a partner
       is an error. Without ``seg_map_path`` in ``data_prefix`` the samples
       have no labels (inference).

    An example of a layout (the TokenFusion NYUDv2 release):

    .. code-block:: none

        data/nyudv2
        ├── rgb/000003.png ...     (border-cropped: < 480x640)
        ├── depth/000003.png ...   (16-bit PNG, millimetres, 480x640)
        ├── masks/000003.png ...   (0..39, 255 = ignore; RGB's size)
        ├── train.txt
        └── test.txt

    Each item of ``data_list`` is a dict with ``img_path``, ``depth_path``,
    ``seg_map_path`` (when labelled), ``label_map``, ``reduce_zero_label``,
    ``size_mismatch``, ``seg_fields`` (``[]``) and ``num_classes`` (the
    number of classes in ``metainfo``, or None; :class:`LoadRGBDAnnotations`
    uses it to find out-of-range labels).

    Args:
        ann_file (str): List file, relative to ``data_root`` unless absolute.
            Defaults to '' (pair files by name).
        img_suffix (str): Suffix of RGB images. Defaults to '.jpg'.
        depth_suffix (str): Suffix of depth images. Defaults to '.png'.
        seg_map_suffix (str): Suffix of label maps. Defaults to '.png'.
        data_prefix (dict): Folders of the three modalities, keys
            ``img_path``, ``depth_path``, ``seg_map_path``, relative to
            ``data_root`` unless absolute. Defaults to
            ``dict(img_path='', depth_path='', seg_map_path='')``.
        check_files (bool): Whether to check at construction that every
            file named by ``ann_file`` exists (one ``exists`` call per file;
            switch off for slow remote backends), and that the first
            sample's RGB and label files are what their columns say (see
            :func:`~.list_file.check_first_sample`: swapped columns are
            refused, naming the line). Defaults to True.
        size_mismatch (str): What the loader does with a depth image of
            another size than its RGB image: ``'error'`` (refuse),
            ``'crop'`` (centre crop to the RGB size, as TokenFusion) or
            ``'stretch'`` (resized onto the RGB image, as the GeminiFusion
            release; the NYUDv2 zoo configs); see
            :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`.
            Written into every sample's data info. Defaults to 'error'.
        **kwargs: Other arguments of :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``metainfo``, ``pipeline``, ``reduce_zero_label``,
            ``test_mode``, ``backend_args`` ...).

    Raises:
        FileNotFoundError: ``data_root``, ``ann_file``, a data folder or a
            listed file does not exist.
        ValueError: A malformed list line, a file without a partner, or no
            samples at all.
    """

    METAINFO: dict = dict()
    SUPPORTED_MODALITIES = RGBD_MODALITIES
    _FILE_KINDS = dict(rgb='RGB')
    _MORE_MISSING = 'more listed files'

    def __init__(self,
                 ann_file: str = '',
                 img_suffix: str = '.jpg',
                 depth_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(
                     img_path='', depth_path='', seg_map_path=''),
                 check_files: bool = True,
                 size_mismatch: str = 'error',
                 **kwargs) -> None:
        self.depth_suffix = depth_suffix
        data_prefix = dict(data_prefix)
        if 'img_path' not in data_prefix or 'depth_path' not in data_prefix:
            raise ValueError(
                f'{self.__class__.__name__}: data_prefix must name '
                "'img_path' and 'depth_path' (and 'seg_map_path' for "
                f'labelled data), got {data_prefix}.')
        super().__init__(
            modalities=RGBD_MODALITIES,
            check_files=check_files,
            size_mismatch=size_mismatch,
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            **kwargs)

    def _path_info(self, paths: Dict[str, str]) -> dict:
        """An RGB-D sample names its files ``img_path`` and ``depth_path``
        (what the RGB-D loaders read; the K-modality ones too)."""
        return dict(img_path=paths['rgb'], depth_path=paths['depth'])

    def load_data_list(self) -> List[dict]:
        """Load the sample list from ``ann_file`` or by pairing file names.

        Returns:
            list[dict]: All data infos of the dataset.
        """
        if self.ann_file:
            data_list = self._load_from_ann_file()
            where = f'list file {self.ann_file}'
        else:
            data_list = self._load_by_name()
            where = (f"folder {self.data_prefix['img_path']} (no "
                     f"'*{self.img_suffix}' files)")
        if len(data_list) == 0:
            raise ValueError(f'{self._name}: no samples found in {where}.')
        return data_list

    # ------------------------------------------------------------------
    # list file
    # ------------------------------------------------------------------
    def _name_from_token(self, token: str) -> str:
        """Sample name of a one-column list line (``RGB/0.jpg`` -> ``0``)."""
        img_dir = self.data_prefix.get('img_path', '')
        candidate = osp.normpath(osp.join(self.data_root or '', token))
        if img_dir and candidate.startswith(osp.normpath(img_dir) + osp.sep):
            token = osp.relpath(candidate, osp.normpath(img_dir))
        if self.img_suffix and token.endswith(self.img_suffix):
            token = token[:-len(self.img_suffix)]
        return token

    def _paths_from_name(self, name: str) -> Tuple[str, str, Optional[str]]:
        img = osp.join(self.data_prefix['img_path'], name + self.img_suffix)
        depth = osp.join(self.data_prefix['depth_path'],
                         name + self.depth_suffix)
        seg_dir = self.data_prefix.get('seg_map_path', None)
        seg = None if seg_dir is None else osp.join(seg_dir, name +
                                                    self.seg_map_suffix)
        return img, depth, seg

    def _load_from_ann_file(self) -> List[dict]:
        if not self._exists(self.ann_file):
            raise FileNotFoundError(
                f'{self._name}: list file (ann_file) {self.ann_file} does '
                'not exist.')
        lines = read_list_file(self.ann_file, self.backend_args, self._name)
        data_list, missing, first_line = [], [], None
        for lineno, line in enumerate(lines, start=1):
            tokens = line.split()
            if not tokens:
                continue
            first_line = first_line or lineno
            if len(tokens) == 3:
                rgb, seg, depth = (
                    osp.join(self.data_root, t) if self.data_root else t
                    for t in tokens)
            elif len(tokens) == 1:
                rgb, depth, seg = self._paths_from_name(
                    self._name_from_token(tokens[0]))
            else:
                raise ValueError(
                    f'{self._name}: line {lineno} of {self.ann_file} is '
                    f'malformed: expected 3 columns "rgb label depth" (or '
                    f'1 column naming a sample), got {len(tokens)}: '
                    f'{line.strip()!r}')
            paths = dict(rgb=rgb, depth=depth)
            missing += self._missing_files(f'line {lineno} of {self.ann_file}',
                                           paths, seg)
            data_list.append(self._make_info(paths, seg))
        self._raise_missing(missing)
        if self.check_files and data_list:
            check_first_sample(data_list[0],
                               f'line {first_line} of {self.ann_file}',
                               self._num_classes(), self.backend_args,
                               self._name)
        return data_list

    # ------------------------------------------------------------------
    # pairing by file name
    # ------------------------------------------------------------------
    def _list_names(self, folder: str, suffix: str, kind: str) -> List[str]:
        if not self._isdir(folder, self.backend_args):
            raise FileNotFoundError(
                f'{self._name}: {kind} folder {folder} does not exist.')
        names = []
        for rel in fileio.list_dir_or_file(
                dir_path=folder,
                list_dir=False,
                suffix=suffix,
                recursive=True,
                backend_args=self.backend_args):
            names.append(rel[:-len(suffix)] if suffix else rel)
        return sorted(names)

    def _load_by_name(self) -> List[dict]:
        img_dir = self.data_prefix['img_path']
        depth_dir = self.data_prefix['depth_path']
        seg_dir = self.data_prefix.get('seg_map_path', None)
        folders: Dict[str, Tuple[str, str]] = {
            'RGB': (img_dir, self.img_suffix),
            'depth': (depth_dir, self.depth_suffix)
        }
        if seg_dir is not None:
            folders['label'] = (seg_dir, self.seg_map_suffix)
        names = {
            kind: set(self._list_names(folder, suffix, kind))
            for kind, (folder, suffix) in folders.items()
        }
        problems = []
        for kind, own in names.items():
            for other_kind, other in names.items():
                if other_kind == kind:
                    continue
                lonely = sorted(own - other)
                if lonely:
                    folder, suffix = folders[kind]
                    other_folder, other_suffix = folders[other_kind]
                    shown = ', '.join(
                        osp.join(folder, n + suffix) for n in lonely[:5])
                    more = (f' and {len(lonely) - 5} more'
                            if len(lonely) > 5 else '')
                    problems.append(
                        f'{len(lonely)} {kind} file(s) without a '
                        f'{other_kind} partner (expected '
                        f'{osp.join(other_folder, "<name>" + other_suffix)})'
                        f': {shown}{more}')
        if problems:
            raise ValueError(f'{self._name}: pairing files by name failed: ' +
                             '; '.join(problems))
        data_list = []
        for name in sorted(names['RGB']):
            img, depth, seg = self._paths_from_name(name)
            data_list.append(self._make_info(dict(rgb=img, depth=depth), seg))
        if self.check_files and data_list:
            check_first_sample(
                data_list[0], f'the first sample ({sorted(names["RGB"])[0]}, '
                'paired by name)', self._num_classes(), self.backend_args,
                self._name)
        return data_list

"""Base class of the datasets with RGB + K-1 aligned modalities."""
from typing import Dict, List, Optional, Sequence, Tuple

import mmengine.fileio as fileio
from mmseg.datasets import BaseSegDataset

from .modalities import check_modality_names
from .transforms.size_mismatch import check_size_mismatch


class MultiModalSegDataset(BaseSegDataset):
    """Semantic segmentation samples with one file per modality.

    The one dataset base of the package: the RGB-D datasets
    (:class:`RGBDDataset`, NYUDv2, SUN RGB-D) are its ``('rgb', 'depth')``
    case, DeLiVER, MFNet and the folder datasets its K-modality ones.

    Each item of ``data_list`` is a dict with ``img_path`` (the RGB image),
    ``modality_paths`` (dict modality name -> file, in the order of
    ``modalities``, RGB first), ``modalities`` (the tuple of names),
    ``seg_map_path`` (when labelled), ``label_map``, ``reduce_zero_label``,
    ``size_mismatch``, ``seg_fields`` and ``num_classes``; load it with
    :class:`LoadMultiModalImageFromFile` and
    :class:`LoadMultiModalAnnotations`. (An RGB-D sample names its files
    ``img_path`` and ``depth_path`` instead, see :meth:`_path_info`; the
    loaders read both forms.)

    Subclasses set :attr:`SUPPORTED_MODALITIES` and implement
    :meth:`load_data_list` with :meth:`_make_info`, :meth:`_missing_files`
    and :meth:`_raise_missing`.

    Args:
        modalities (Sequence[str]): Modality names, ``'rgb'`` first.
        check_files (bool): Whether to check at construction that every
            file of every sample exists (one ``exists`` call per file;
            switch off for slow remote backends). Defaults to True.
        size_mismatch (str): What the loader does with a modality of
            another size than RGB (one not in the loader's
            ``resize_to_rgb``): ``'error'``, ``'crop'`` or ``'stretch'``,
            see :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`.
            Written into every sample's data info. Defaults to 'error'.
        **kwargs: Arguments of :class:`mmseg.datasets.BaseSegDataset`.

    Raises:
        ValueError: An unknown modality, or a bad ``size_mismatch``.
        FileNotFoundError: ``data_root`` does not exist.
    """

    METAINFO: dict = dict()
    SUPPORTED_MODALITIES: Tuple[str, ...] = ('rgb', )
    #: How the missing-file errors name a modality's file (default: its
    #: name, ``'depth file ...'``).
    _FILE_KINDS: Dict[str, str] = {}
    #: How the missing-file errors count the other missing files.
    _MORE_MISSING = 'more files'

    def __init__(self,
                 modalities: Sequence[str] = ('rgb', ),
                 check_files: bool = True,
                 size_mismatch: str = 'error',
                 **kwargs) -> None:
        self.modalities = check_modality_names(modalities, self._name)
        self.size_mismatch = check_size_mismatch(size_mismatch, self._name)
        unknown = [
            m for m in self.modalities if m not in self.SUPPORTED_MODALITIES
        ]
        if unknown:
            raise ValueError(
                f'{self._name}: unknown modality {unknown[0]!r} in '
                f'{list(self.modalities)}; this dataset has '
                f'{list(self.SUPPORTED_MODALITIES)} (RGB first).')
        self.check_files = check_files
        data_root = kwargs.get('data_root', None)
        if data_root is not None and not self._isdir(
                data_root, kwargs.get('backend_args', None)):
            raise FileNotFoundError(
                f'{self._name}: data_root {data_root!r} does not exist or '
                'is not a directory.')
        super().__init__(**kwargs)

    @property
    def _name(self) -> str:
        return self.__class__.__name__

    @staticmethod
    def _isdir(path: str, backend_args: Optional[dict]) -> bool:
        try:
            return fileio.isdir(path, backend_args=backend_args)
        except NotImplementedError:  # e.g. http backend: cannot tell
            return True

    def _exists(self, path: str) -> bool:
        try:
            return fileio.exists(path, backend_args=self.backend_args)
        except NotImplementedError:
            return True

    def _num_classes(self) -> Optional[int]:
        classes = self._metainfo.get('classes', None)
        return len(classes) if classes is not None else None

    def _path_info(self, paths: Dict[str, str]) -> dict:
        """The file entries of a sample's data info: ``img_path``,
        ``modality_paths`` and ``modalities``."""
        return dict(
            img_path=paths['rgb'],
            modality_paths={m: paths[m]
                            for m in self.modalities},
            modalities=self.modalities)

    def _make_info(self, paths: Dict[str, str],
                   seg_map_path: Optional[str]) -> dict:
        """The data info of one sample.

        Args:
            paths (dict): Modality name -> file, every modality.
            seg_map_path (str, optional): The label file (None: none).

        Returns:
            dict: :meth:`_path_info`, then ``seg_map_path``, ``label_map``,
            ``reduce_zero_label``, ``size_mismatch``, ``seg_fields`` and
            ``num_classes``.
        """
        info = self._path_info(paths)
        if seg_map_path is not None:
            info['seg_map_path'] = seg_map_path
        info['label_map'] = self.label_map
        info['reduce_zero_label'] = self.reduce_zero_label
        info['size_mismatch'] = self.size_mismatch
        info['seg_fields'] = []
        info['num_classes'] = self._num_classes()
        return info

    def _missing_files(self, where: str, paths: Dict[str, str],
                       seg_map_path: Optional[str]) -> List[tuple]:
        """``(where, kind, path)`` of the sample's files that do not exist
        (nothing when ``check_files`` is off)."""
        if not self.check_files:
            return []
        files = [(self._FILE_KINDS.get(m, m), paths[m])
                 for m in self.modalities]
        if seg_map_path is not None:
            files.append(('label', seg_map_path))
        return [(where, kind, path) for kind, path in files
                if not self._exists(path)]

    def _raise_missing(self, missing: List[tuple]) -> None:
        """Raise FileNotFoundError for the first missing file, if any."""
        if not missing:
            return
        where, kind, path = missing[0]
        more = (f' ({len(missing) - 1} {self._MORE_MISSING} are missing)'
                if len(missing) > 1 else '')
        raise FileNotFoundError(
            f'{self._name}: {where}: {kind} file {path} does not exist'
            f'{more}.')

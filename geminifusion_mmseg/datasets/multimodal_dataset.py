"""Base class of the datasets with RGB + K-1 aligned modalities."""
from typing import Dict, List, Optional, Sequence, Tuple

from mmseg.datasets import BaseSegDataset

from .modalities import check_modality_names
from .rgbd_dataset import RGBDDataset
from .transforms.size_mismatch import check_size_mismatch


class MultiModalSegDataset(BaseSegDataset):
    """Semantic segmentation samples with one file per modality.

    Each item of ``data_list`` is a dict with ``img_path`` (the RGB image),
    ``modality_paths`` (dict modality name -> file, in the order of
    ``modalities``, RGB first), ``modalities`` (the tuple of names),
    ``seg_map_path`` (when labelled), ``label_map``, ``reduce_zero_label``,
    ``size_mismatch``, ``seg_fields`` and ``num_classes``; load it with
    :class:`LoadMultiModalImageFromFile` and
    :class:`LoadMultiModalAnnotations`.

    Subclasses set :attr:`SUPPORTED_MODALITIES` and implement
    :meth:`load_data_list` with :meth:`_make_info` and
    :meth:`_raise_missing`.

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
    """

    METAINFO: dict = dict()
    SUPPORTED_MODALITIES: Tuple[str, ...] = ('rgb', )

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

    # the file checks of the RGB-D datasets (True where a backend can't tell)
    _isdir = staticmethod(RGBDDataset._isdir)
    _exists = RGBDDataset._exists

    def _num_classes(self) -> Optional[int]:
        classes = self._metainfo.get('classes', None)
        return len(classes) if classes is not None else None

    def _make_info(self, paths: Dict[str, str],
                   seg_map_path: Optional[str]) -> dict:
        info = dict(
            img_path=paths['rgb'],
            modality_paths={m: paths[m]
                            for m in self.modalities},
            modalities=self.modalities)
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
        files = [(m, paths[m]) for m in self.modalities]
        if seg_map_path is not None:
            files.append(('label', seg_map_path))
        return [(where, kind, path) for kind, path in files
                if not self._exists(path)]

    def _raise_missing(self, missing: List[tuple]) -> None:
        """Raise FileNotFoundError for the first missing file, if any."""
        if not missing:
            return
        where, kind, path = missing[0]
        more = (f' ({len(missing) - 1} more files are missing)'
                if len(missing) > 1 else '')
        raise FileNotFoundError(
            f'{self._name}: {where}: {kind} file {path} does not exist'
            f'{more}.')

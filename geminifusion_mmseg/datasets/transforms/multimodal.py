"""Loading RGB + any number of aligned modalities as one 3K-channel image,
and the label map: the one loading implementation of the package (the
RGB-D loaders of :mod:`.loading` are its ``('rgb', 'depth')`` case)."""
import logging
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from ...utils.mmseg_api_guard import mmseg_api_hint
from ..modalities import check_modality_names
from .image_io import (IMDECODE_BACKENDS, read_file_bytes,
                       read_image_unchanged, read_rgb_image)
from .modality_encoding import (DEFAULT_ENCODINGS, MODALITY_ENCODINGS,
                                ModalityEncoding)
from .resize import nearest_resize
from .size_mismatch import (check_size_mismatch, match_rgb_size,
                            resolve_size_mismatch, stash_unaligned)

__all__ = [
    'LoadMultiModalImageFromFile', 'LoadMultiModalImageFromNDArray',
    'LoadMultiModalAnnotations', 'encode_modality', 'read_image_unchanged',
    'DEFAULT_ENCODINGS', 'MODALITY_ENCODINGS'
]

EncodingCfg = Union[str, dict]


def encode_modality(img: np.ndarray,
                    encoding: str = 'image',
                    scale: float = 1.0,
                    value_range: Optional[Sequence[float]] = None,
                    source: str = 'image') -> np.ndarray:
    """The 3 input channels of one decoded modality image.

    Args:
        img (np.ndarray): (H, W) or (H, W, C), RGB(A) order, values as
            stored.
        encoding (str): One of :data:`MODALITY_ENCODINGS` except 'rgb':

            - ``'image'``: the image as the DeLiVER code reads its
              modalities: one channel repeated to 3, 3 channels as they
              are, 4 channels cut to the first 3; values as stored.
            - ``'thermal'``: the image as the MFNet code of the GeminiFusion
              DeLiVER branch reads thermal images: one channel repeated,
              3 channels as they are, 4 channels (an MFNet RGB-T PNG) ->
              the 4th channel (thermal) repeated to 3.
            - ``'raw'``, ``'scale'``, ``'clip'``, ``'hha'``: the depth
              encodings (as ``LoadRGBDImageFromFile(depth_encoding)``).

            The encoding itself is :meth:`.ModalityEncoding.encode`.
        scale (float): Factor of ``'scale'``.
        value_range (tuple[float, float], optional): ``(min, max)`` of
            ``'clip'``.
        source (str): Names the input in errors.

    Returns:
        np.ndarray: float32 (H, W, 3). NaN/inf of a float image are read
        as 0 (:func:`~.modality_encoding.replace_non_finite`, one warning
        per file).
    """
    if encoding not in MODALITY_ENCODINGS:
        raise ValueError(f'Unknown encoding {encoding!r} for {source}; '
                         f'choose one of {MODALITY_ENCODINGS}.')
    return ModalityEncoding(encoding, scale, value_range).encode(img, source)


@TRANSFORMS.register_module()
class LoadMultiModalImageFromFile(BaseTransform):
    """Load RGB and K-1 aligned modalities as one 3K-channel float image.

    The one loading implementation of the package: the RGB-D loaders
    (:class:`LoadRGBDImageFromFile`, :class:`LoadRGBDImageFromNDArray`)
    are this class with ``modalities=('rgb', 'depth')`` and the depth
    encoding given as ``depth_encoding`` / ``depth_scale`` /
    ``depth_range``.

    One file per modality; each becomes 3 channels (its ``encoding``, a
    :class:`~.modality_encoding.ModalityEncoding`), and they are stacked in
    the order of ``modalities``, RGB first: channels ``3*i .. 3*i+2`` of
    ``img`` hold modality ``i``. All geometric transforms of mmseg then
    move every modality and the label together; the photometric ones of
    this package (:class:`RGBColorJitter`, :class:`RGBGaussianBlur`) touch
    channels 0-2 (RGB) only. The data preprocessor normalises per channel
    (see :func:`geminifusion_mmseg.datasets.modality_mean_std`).

    The files come from ``results['modality_paths']`` (a dict name -> path
    filled by :class:`DeLiVERDataset`, :class:`MFNetDataset`, ...); for a
    sample of an RGB-D dataset (``img_path`` and ``depth_path``) it is
    ``{'rgb': img_path, 'depth': depth_path}``.

    Encodings (``encodings``, per modality a string or
    ``dict(encoding=..., scale=..., range=...)``):

    - ``'rgb'`` (the modality ``'rgb'`` only): a colour image decoded to
      8-bit RGB (grey repeated, alpha dropped,
      :func:`~.image_io.read_rgb_image`);
    - ``'image'``: the image as stored (8- or 16-bit), one channel repeated
      to 3, four channels cut to the first 3 -- how the DeLiVER code reads
      depth, event and LiDAR images (the default of modalities without an
      entry in :data:`DEFAULT_ENCODINGS`);
    - ``'thermal'``: like ``'image'`` but a 4-channel (RGB-T) image gives
      its 4th channel, repeated (the MFNet reader of the GeminiFusion
      DeLiVER branch);
    - ``'raw'``, ``'scale'`` (``scale``), ``'clip'`` (``range``), ``'hha'``:
      the depth encodings (see :class:`LoadRGBDImageFromFile`).

    Defaults: ``rgb='rgb'``, ``depth='raw'``, ``hha='hha'``,
    ``thermal='thermal'``, anything else ``'image'``.

    Modalities named in ``resize_to_rgb`` are resized to the RGB image's
    size with nearest-neighbour (PyTorch's rule, as torchvision's
    ``InterpolationMode.NEAREST`` on a tensor) when their size differs --
    DeLiVER's event maps (``eventlowres``). Any other modality of another
    size follows ``size_mismatch`` (see
    :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`):
    ``'error'`` names the modality, the files and both sizes; ``'crop'``
    centre-crops it to the RGB size; ``'stretch'`` stretches it onto the
    RGB image and keeps it at its own size for the first resize
    (``results['unaligned_modalities']``).

    Required Keys:

    - modality_paths (dict name -> path), or img_path (+ depth_path)
    - modalities (optional: the dataset's modality list)
    - size_mismatch (optional: the dataset's policy)

    Added Keys:

    - img (np.float32, (H, W, 3K), H x W the RGB size)
    - img_shape
    - ori_shape
    - modalities (tuple of the K names, in channel order)
    - modality_encodings (dict name -> dict(encoding, scale, range): how
      each modality's channels are encoded, for the corruptions and
      :class:`RandomModalityDrop`)
    - unaligned_modalities (only for stretched modalities)

    Args:
        modalities (Sequence[str], optional): Modality names in channel
            order, ``'rgb'`` first. None (recommended) takes the dataset's
            (``results['modalities']``, else the keys of
            ``modality_paths``); when given, it must equal the dataset's.
            Defaults to None.
        encodings (dict, optional): Encoding per modality name (see above).
            Defaults to None (all defaults).
        resize_to_rgb (Sequence[str]): Modalities resized (nearest) to the
            RGB size. Defaults to ().
        imdecode_backend (str): 'cv2' or 'pillow', for every file (the RGB
            image by :func:`~.image_io.read_rgb_image`, the others by
            :func:`~.image_io.read_image_unchanged`). Defaults to 'cv2'.
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.
        size_mismatch (str, optional): 'stretch', 'crop' or 'error' for a
            modality of another size (not in ``resize_to_rgb``); None
            (recommended) takes the sample's (its dataset's, 'error' if it
            has none). Defaults to None.
    """

    #: Decoder of the modalities other than RGB; None: ``imdecode_backend``
    #: (the RGB-D loaders read depth with OpenCV, whatever that is).
    modality_imdecode_backend: Optional[str] = None
    #: Whether the errors name the modality and the ``encodings`` entry to
    #: change; the RGB-D loaders (False) keep their messages, which name
    #: the depth file and ``depth_encoding``.
    _errors_name_modality = True

    def __init__(self,
                 modalities: Optional[Sequence[str]] = None,
                 encodings: Optional[Dict[str, EncodingCfg]] = None,
                 resize_to_rgb: Sequence[str] = (),
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None,
                 size_mismatch: Optional[str] = None) -> None:
        name = self.__class__.__name__
        self.size_mismatch = check_size_mismatch(
            size_mismatch, name, allow_none=True)
        if imdecode_backend not in IMDECODE_BACKENDS:
            raise ValueError(f'{name}: imdecode_backend must be cv2 or '
                             f'pillow, got {imdecode_backend!r}.')
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args.copy() if backend_args else None
        self.modalities = None if modalities is None else \
            check_modality_names(modalities, name)
        #: name -> ModalityEncoding of the modalities the config names
        self._encodings: Dict[str, ModalityEncoding] = {
            k: ModalityEncoding.parse(k, v)
            for k, v in dict(encodings or {}).items()
        }
        self.encodings = {k: e.as_dict() for k, e in self._encodings.items()}
        if self.modalities is not None:
            extra = sorted(set(self.encodings) - set(self.modalities))
            if extra:
                raise ValueError(
                    f'{name}: encodings given for {extra}, which are not '
                    f'among the modalities {list(self.modalities)}.')
        if isinstance(resize_to_rgb, str):
            resize_to_rgb = (resize_to_rgb, )
        self.resize_to_rgb = tuple(resize_to_rgb)
        if 'rgb' in self.resize_to_rgb:
            raise ValueError(f"{name}: resize_to_rgb cannot hold 'rgb'.")

    def modality_encoding(self, name: str) -> ModalityEncoding:
        """The :class:`~.modality_encoding.ModalityEncoding` of modality
        ``name`` (the config's, else
        :meth:`~.modality_encoding.ModalityEncoding.default_for`)."""
        enc = self._encodings.get(name)
        return ModalityEncoding.default_for(name) if enc is None else enc

    def encoding_of(self, name: str) -> dict:
        """The encoding of modality ``name`` as a dict (encoding, scale,
        range), the form of ``results['modality_encodings']``."""
        return self.modality_encoding(name).as_dict()

    def _load_rgb(self, path: str) -> np.ndarray:
        """The RGB image of ``path``: (H, W, 3) uint8, RGB order
        (:func:`~.image_io.read_rgb_image` with this loader's decoder)."""
        return read_rgb_image(path, self.imdecode_backend, self.backend_args)

    def _sample_paths(self, results: dict) -> Dict[str, str]:
        paths = results.get('modality_paths')
        if paths is None:
            if 'img_path' not in results:
                raise KeyError(
                    f'{self.__class__.__name__}: the sample has neither '
                    f'modality_paths nor img_path; got keys {list(results)}.')
            paths = {'rgb': results['img_path']}
            if 'depth_path' in results:
                paths['depth'] = results['depth_path']
            elif 'modalities' not in results and (self.modalities is None
                                                  or len(self.modalities) > 1):
                # one RGB image, as mmseg's single-image APIs give it
                raise KeyError(
                    f'{self.__class__.__name__}: the sample has only an '
                    f"RGB image (img_path {results['img_path']}). " +
                    mmseg_api_hint('An RGB-only caller (e.g. mmseg.apis.'
                                   'inference_model, MMSegInferencer)'))
        return dict(paths)

    def _names(self, results: dict, paths: Dict[str, str]) -> Tuple[str, ...]:
        name = self.__class__.__name__
        sample_names = results.get('modalities')
        sample_names = tuple(paths) if sample_names is None else \
            tuple(sample_names)
        if self.modalities is None:
            return check_modality_names(sample_names, name)
        if self.modalities != sample_names:
            raise ValueError(
                f'{name}: modalities={list(self.modalities)} but the dataset '
                f'gives {list(sample_names)} (sample {results.get("img_path")}'
                '); set the same list in both (or leave the loader\'s None).')
        return self.modalities

    def _what(self, name: str, kind: str = 'image') -> str:
        """Names modality ``name`` in the size messages (``'depth image'``;
        the RGB-D loaders: ``'Depth image'``, as they always have)."""
        what = f'{name} {kind}'
        return what if self._errors_name_modality else what.capitalize()

    def _load_one(self, name: str, path: str, sample: str) -> np.ndarray:
        """Modality ``name`` of the file ``path`` (of the sample whose RGB
        image is ``sample``), encoded: float32 (h, w, 3)."""
        named = self._errors_name_modality
        if name == 'rgb':  # the encoding 'rgb', the only one of 'rgb'
            try:
                return self._load_rgb(path).astype(np.float32)
            except FileNotFoundError as e:
                if not named:
                    raise
                raise FileNotFoundError(
                    f"Modality 'rgb': image file {path} does not exist."
                ) from e
        what = f'{name} image'
        try:
            img = read_image_unchanged(
                path, what, self.backend_args, self.modality_imdecode_backend
                or self.imdecode_backend)
        except FileNotFoundError as e:
            if not named:
                raise
            raise FileNotFoundError(
                f'Modality {name!r}: {what} file {path} of the sample '
                f'{sample} does not exist.') from e
        enc = self.modality_encoding(name)
        try:
            return enc.encode(img, f'{what} {path}' if named else path)
        except ValueError as e:
            if not named:
                raise
            raise ValueError(
                f'{e} ({self.__class__.__name__}: the encoding of '
                f'{name!r} is {enc.encoding!r}; choose another with '
                f"encodings=dict({name}=...), e.g. 'image' to take the file "
                'as stored.)') from e

    def transform(self, results: dict) -> dict:
        """Load every modality of the sample.

        Args:
            results (dict): Result dict with ``modality_paths`` (or
                ``img_path`` / ``depth_path``).

        Returns:
            dict: The dict with ``img`` (float32, (H, W, 3K)),
            ``img_shape``, ``ori_shape`` and ``modalities``.
        """
        paths = self._sample_paths(results)
        names = self._names(results, paths)
        missing = [n for n in names if n not in paths]
        if missing:
            raise KeyError(
                f'{self.__class__.__name__}: the sample has no path for the '
                f'modalities {missing} (it has {sorted(paths)}).')
        rgb = self._load_one('rgb', paths['rgb'], paths['rgb'])
        return self._stack(
            results, rgb, names, lambda name:
            (self._load_one(name, paths[name], paths['rgb']), self._what(name),
             f' of {paths[name]}'), f" of {paths['rgb']}")

    def _stack(self, results: dict, rgb: np.ndarray, names: Sequence[str],
               load: Callable[[str], Tuple[np.ndarray, str,
                                           str]], rgb_source: str) -> dict:
        """Stack RGB (H, W, 3) and the other modalities into ``img``.

        Args:
            results (dict): Gets ``img`` (float32, (H, W, 3K)),
                ``img_shape``, ``ori_shape``, ``modalities`` and
                ``modality_encodings``.
            rgb (np.ndarray): (H, W, 3), 0..255.
            names (Sequence[str]): The modalities, RGB first.
            load (callable): ``name -> (encoded (h, w, 3), what, source)``;
                ``what`` and ``source`` name the input in errors.
            rgb_source (str): Names the RGB input in errors.

        Returns:
            dict: ``results``. A modality of another size is resized to
            the RGB size (nearest) if listed in ``resize_to_rgb``, else it
            follows the sample's ``size_mismatch`` policy.
        """
        policy = resolve_size_mismatch(results, self.size_mismatch,
                                       self.__class__.__name__)
        hint = ' (Or list the modality in resize_to_rgb to resize it at ' \
            'load, nearest.)' if self._errors_name_modality else ''
        h, w = rgb.shape[:2]
        img = np.empty((h, w, 3 * len(names)), dtype=np.float32)
        img[..., :3] = rgb
        stretched = []
        for i, name in enumerate(names[1:], start=1):
            x, what, source = load(name)
            if x.shape[:2] != (h, w) and name in self.resize_to_rgb:
                x = nearest_resize(x, (h, w))
            aligned, was_stretched = match_rgb_size(x, (h, w), policy, what,
                                                    source, rgb_source, hint)
            img[..., 3 * i:3 * i + 3] = aligned
            if was_stretched:
                stretched.append((name, (3 * i, 3 * i + 3), x))
        results['img'] = img
        results['img_shape'] = (h, w)
        results['ori_shape'] = (h, w)
        results['modalities'] = names
        results['modality_encodings'] = {n: self.encoding_of(n) for n in names}
        for name, channels, x in stretched:
            stash_unaligned(results, name, channels, x)
        return results

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        mods = None if self.modalities is None else list(self.modalities)
        repr_str += f'(modalities={mods}, '
        repr_str += f'encodings={self.encodings}, '
        repr_str += f'resize_to_rgb={self.resize_to_rgb}, '
        repr_str += f"imdecode_backend='{self.imdecode_backend}', "
        repr_str += f'backend_args={self.backend_args}'
        if self.size_mismatch is not None:
            repr_str += f", size_mismatch='{self.size_mismatch}'"
        return repr_str + ')'


@TRANSFORMS.register_module()
class LoadMultiModalImageFromNDArray(LoadMultiModalImageFromFile):
    """:class:`LoadMultiModalImageFromFile` for arrays already in memory.

    Same arguments and encodings (``'rgb'`` takes the array as RGB
    0..255); the inference API puts it in place of the config's file
    loader.

    Required Keys:

    - img (np.ndarray, (H, W, 3), **RGB order**, 0..255)
    - modality_arrays (dict name -> np.ndarray, the other modalities as
      decoded: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) in RGB(A) order,
      values as stored)
    - modalities (optional, the channel order; default ``'rgb'`` then the
      keys of ``modality_arrays``)

    Modified Keys:

    - img (np.float32, (H, W, 3K))

    Added Keys:

    - img_shape
    - ori_shape
    - modalities, modality_encodings
    - unaligned_modalities (only for stretched modalities)

    Removed Keys:

    - modality_arrays
    """

    def transform(self, results: dict) -> dict:
        """Encode and stack the arrays.

        Args:
            results (dict): Result dict with ``img`` and
                ``modality_arrays``.

        Returns:
            dict: The dict with ``img`` (float32, (H, W, 3K)),
            ``img_shape``, ``ori_shape`` and ``modalities``.
        """
        name = self.__class__.__name__
        if 'img' not in results or 'modality_arrays' not in results:
            raise KeyError(f"{name} needs 'img' and 'modality_arrays'; got "
                           f'keys {list(results)}.')
        arrays = dict(results.pop('modality_arrays'))
        rgb = np.asarray(results['img'])
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'{name}: the RGB image has shape {rgb.shape}; '
                             'expected (H, W, 3).')
        names = self._names(results, {'rgb': None, **arrays})
        missing = [n for n in names[1:] if n not in arrays]
        if missing:
            raise KeyError(f'{name}: no array for the modalities {missing} '
                           f'(modality_arrays has {sorted(arrays)}).')
        named = self._errors_name_modality

        def load(m: str) -> Tuple[np.ndarray, str, str]:
            if named:
                source, where = f'{m} array', ''
            else:  # the RGB-D messages name the file the array came from
                source = results.get(f'{m}_path') or 'array'
                where = f' of {source}'
            return self.modality_encoding(m).encode(
                np.asarray(arrays[m]),
                source), self._what(m, 'array' if named else 'image'), where

        rgb_source = '' if named else \
            f" of {results.get('img_path') or 'the array'}"
        return self._stack(results, rgb, names, load, rgb_source)


@TRANSFORMS.register_module()
class LoadMultiModalAnnotations(LoadAnnotations):
    """Load and check the label map of a sample.

    Like mmseg's :class:`LoadAnnotations` (``reduce_zero_label``: 0 -> 255,
    v -> v - 1; then ``label_map``), with checks:

    - the label map must have the size of the image loaded before it
      (``results['ori_shape']``), otherwise an error names the path and
      both sizes (so load labels BEFORE any resize of the image);
    - after ``reduce_zero_label`` and ``label_map``, values
      ``>= num_classes`` other than 255 are set to 255 (ignored); the first
      file where this happens is reported with a warning (once per
      transform instance, i.e. per data-loader worker).

    Labels are read unchanged (8- or 16-bit). The DeLiVER and MFNet code
    reads label maps with ``torchvision.io.read_image(path)[0]``: the FIRST
    channel (red, in RGB order) of whatever the file holds. Here a 3- or
    4-channel label file gives its channel ``channel`` (RGB(A) order); a
    one-channel file is read as is. With ``channel=None`` (the RGB-D
    :class:`LoadRGBDAnnotations`) a multi-channel (colour) label file is
    an error.

    Required Keys:

    - seg_map_path
    - reduce_zero_label
    - seg_fields
    - label_map (optional)
    - num_classes (optional, added by the datasets of this package)
    - ori_shape (optional, for the size check)

    Added Keys:

    - gt_seg_map (np.uint8, (H, W))

    Args:
        channel (int, optional): Channel of a multi-channel label file,
            RGB(A) order; None refuses such files. Defaults to 0 (red), as
            the DeLiVER / MFNet code.
        num_classes (int, optional): Number of classes; None takes
            ``results['num_classes']`` (set by the datasets from their
            metainfo); if neither is known, no range check. Defaults to
            None.
        reduce_zero_label (bool, optional): None (recommended) follows the
            dataset's ``reduce_zero_label``. Defaults to None.
        imdecode_backend (str): Decoder backend ('pillow', 'cv2'; other
            mmcv backends through :func:`mmcv.imfrombytes`). Defaults to
            'pillow'.
        backend_args (dict, optional): Arguments to instantiate a file
            backend. Defaults to None.
    """

    def __init__(self,
                 channel: Optional[int] = 0,
                 num_classes: Optional[int] = None,
                 reduce_zero_label: Optional[bool] = None,
                 imdecode_backend: str = 'pillow',
                 backend_args: Optional[dict] = None) -> None:
        super().__init__(
            reduce_zero_label=None,
            backend_args=backend_args,
            imdecode_backend=imdecode_backend)
        self.reduce_zero_label = reduce_zero_label
        self.num_classes = num_classes
        self.channel = None if channel is None else int(channel)
        self._warned = False

    def _decode(self, path: str) -> np.ndarray:
        """The label file as stored, (H, W) or (H, W, C) RGB(A) order."""
        if self.imdecode_backend in IMDECODE_BACKENDS:
            return read_image_unchanged(path, 'label', self.backend_args,
                                        self.imdecode_backend)
        content = read_file_bytes(path, 'label', self.backend_args)
        try:
            seg = mmcv.imfrombytes(
                content, flag='unchanged', backend=self.imdecode_backend)
        except Exception as e:
            raise OSError(f'Cannot decode label file {path}: the file is '
                          f'corrupt or not an image ({e}).') from e
        if seg is None:
            raise OSError(f'Cannot decode label file {path}.')
        return seg

    def _read(self, path: str) -> np.ndarray:
        """The (H, W) class-index map of the label file ``path``."""
        seg = self._decode(path)
        if seg.ndim == 3 and self.channel is not None:
            if not 0 <= self.channel < seg.shape[2]:
                raise ValueError(
                    f'Label file {path} has {seg.shape[2]} channels; '
                    f'channel={self.channel} does not exist.')
            seg = seg[..., self.channel]
        elif seg.ndim == 3 and seg.shape[2] == 1:
            seg = seg[..., 0]
        if seg.ndim != 2:
            raise ValueError(
                f'Label file {path} has shape {seg.shape}; expected a '
                'single-channel map of class indices (not a colour image).')
        return seg

    def _load_seg_map(self, results: dict) -> None:
        owner = self.__class__.__name__
        if 'seg_map_path' not in results:
            raise KeyError(
                f'{owner}: the sample has no seg_map_path (was the dataset '
                "built without data_prefix['seg_map_path']?).")
        path = results['seg_map_path']
        seg = self._read(path).astype(np.int64)
        ori_shape = results.get('ori_shape', None)
        if ori_shape is not None and tuple(seg.shape) != tuple(ori_shape[:2]):
            raise ValueError(
                f'Label map size {tuple(seg.shape)} (H, W) of {path} differs '
                f'from the image size {tuple(ori_shape[:2])} of '
                f"{results.get('img_path')}. (Load labels before resizing.)")

        reduce_zero_label = self.reduce_zero_label
        if reduce_zero_label is None:
            reduce_zero_label = results.get('reduce_zero_label', False)
        elif reduce_zero_label != results.get('reduce_zero_label',
                                              reduce_zero_label):
            raise ValueError(
                f'{owner}: reduce_zero_label={reduce_zero_label} but the '
                'dataset was built with '
                f"reduce_zero_label={results['reduce_zero_label']}.")
        if reduce_zero_label:
            seg = np.where(seg == 0, 255, np.where(seg == 255, 255, seg - 1))
        label_map = results.get('label_map', None)
        if label_map is not None:
            mapped = seg.copy()
            for old_id, new_id in label_map.items():
                mapped[seg == old_id] = new_id
            seg = mapped

        num_classes = self.num_classes if self.num_classes is not None \
            else results.get('num_classes', None)
        if num_classes is not None:
            bad = (seg >= num_classes) & (seg != 255)
            if bad.any():
                if not self._warned:
                    self._warned = True
                    values = np.unique(seg[bad])
                    shown = ', '.join(str(v) for v in values[:10])
                    print_log(
                        f'{owner}: label file {path} holds values >= '
                        f'num_classes={num_classes} (other than 255): '
                        f'{shown}{" ..." if len(values) > 10 else ""}'
                        f' (after reduce_zero_label={reduce_zero_label}); '
                        'they are set to 255 (ignored). Check the dataset '
                        'type, its classes and reduce_zero_label. Further '
                        'files with such values are not reported.',
                        logger='current',
                        level=logging.WARNING)
                seg = np.where(bad, 255, seg)
        results['gt_seg_map'] = seg.astype(np.uint8)
        results.setdefault('seg_fields', []).append('gt_seg_map')

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        repr_str += f'(num_classes={self.num_classes}, '
        repr_str += f'reduce_zero_label={self.reduce_zero_label}, '
        repr_str += f"imdecode_backend='{self.imdecode_backend}', "
        repr_str += f'backend_args={self.backend_args}'
        if self.channel is not None:
            repr_str += f', channel={self.channel}'
        return repr_str + ')'

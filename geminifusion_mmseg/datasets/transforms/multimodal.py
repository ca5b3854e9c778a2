"""Loading RGB + any number of aligned modalities as one 3K-channel image."""
import io
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ...utils.mmseg_api_guard import mmseg_api_hint
from ..modalities import check_modality_names
from .loading import (LoadRGBDAnnotations, LoadRGBDImageFromFile, _decode_cv2,
                      _read_bytes)
from .modality_encoding import (DEFAULT_ENCODINGS, MODALITY_ENCODINGS,
                                ModalityEncoding)
from .resize import nearest_resize
from .size_mismatch import (check_size_mismatch, match_rgb_size,
                            resolve_size_mismatch, stash_unaligned)

EncodingCfg = Union[str, dict]


def read_image_unchanged(path: str,
                         what: str = 'image',
                         backend_args: Optional[dict] = None,
                         imdecode_backend: str = 'cv2') -> np.ndarray:
    """Read an image as stored: (H, W) or (H, W, C) in RGB(A) order.

    The bit depth is kept (8 or 16 bits), nothing is converted; like
    ``torchvision.io.read_image`` (``ImageReadMode.UNCHANGED``) with the
    channels last.

    Args:
        path (str): The file.
        what (str): Names the file in error messages.
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.
        imdecode_backend (str): 'cv2' (``IMREAD_UNCHANGED``) or 'pillow'
            (``np.asarray(Image.open(...))``; a palette image then gives its
            indices, OpenCV its colours).

    Returns:
        np.ndarray: The decoded array.
    """
    content = _read_bytes(path, what, backend_args)
    if imdecode_backend == 'pillow':
        from PIL import Image
        try:
            with Image.open(io.BytesIO(content)) as pil:
                img = np.asarray(pil)
        except Exception as e:  # PIL.UnidentifiedImageError, OSError ...
            raise OSError(f'Cannot decode {what} file {path}: the file is '
                          f'corrupt or not an image ({e}).') from e
        return img
    img = _decode_cv2(content, cv2.IMREAD_UNCHANGED, path, what)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


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
              encodings of :func:`~.loading.encode_depth`.

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


def _parse_encoding(name: str, cfg: EncodingCfg) -> dict:
    """``'clip'`` or ``dict(encoding='clip', range=(0, 1e4))`` -> a dict
    with the keys encoding, scale, range (checked by
    :meth:`ModalityEncoding.parse`)."""
    return ModalityEncoding.parse(name, cfg).as_dict()


@TRANSFORMS.register_module()
class LoadMultiModalImageFromFile(BaseTransform):
    """Load RGB and K-1 aligned modalities as one 3K-channel float image.

    One file per modality; each becomes 3 channels (its ``encoding``), and
    they are stacked in the order of ``modalities``, RGB first: channels
    ``3*i .. 3*i+2`` of ``img`` hold modality ``i``. All geometric
    transforms of mmseg then move every modality and the label together;
    the photometric ones of this package (:class:`RGBColorJitter`,
    :class:`RGBGaussianBlur`) touch channels 0-2 (RGB) only. The data
    preprocessor normalises per channel (see
    :func:`geminifusion_mmseg.datasets.modality_mean_std`).

    The files come from ``results['modality_paths']`` (a dict name -> path
    filled by :class:`DeLiVERDataset`, :class:`MFNetDataset`, ...); for a
    sample of an RGB-D dataset (``img_path`` and ``depth_path``) it is
    ``{'rgb': img_path, 'depth': depth_path}``.

    Encodings (``encodings``, per modality a string or
    ``dict(encoding=..., scale=..., range=...)``):

    - ``'rgb'`` (the modality ``'rgb'`` only): a colour image decoded to
      8-bit RGB (grey repeated, alpha dropped), as
      :class:`LoadRGBDImageFromFile` reads it;
    - ``'image'``: the image as stored (8- or 16-bit), one channel repeated
      to 3, four channels cut to the first 3 -- how the DeLiVER code reads
      depth, event and LiDAR images (the default of modalities without an
      entry in :data:`DEFAULT_ENCODINGS`);
    - ``'thermal'``: like ``'image'`` but a 4-channel (RGB-T) image gives
      its 4th channel, repeated (the MFNet reader of the GeminiFusion
      DeLiVER branch);
    - ``'raw'``, ``'scale'`` (``scale``), ``'clip'`` (``range``), ``'hha'``:
      the depth encodings of :class:`LoadRGBDImageFromFile`.

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
            image as in :class:`LoadRGBDImageFromFile`, the others as
            :func:`read_image_unchanged`). Defaults to 'cv2'.
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.
        size_mismatch (str, optional): 'stretch', 'crop' or 'error' for a
            modality of another size (not in ``resize_to_rgb``); None
            (recommended) takes the sample's (its dataset's, 'error' if it
            has none). Defaults to None.
    """

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
        if imdecode_backend not in ('cv2', 'pillow'):
            raise ValueError(f'{name}: imdecode_backend must be cv2 or '
                             f'pillow, got {imdecode_backend!r}.')
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args.copy() if backend_args else None
        self.modalities = None if modalities is None else \
            check_modality_names(modalities, name)
        self.encodings = {
            k: _parse_encoding(k, v)
            for k, v in dict(encodings or {}).items()
        }
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

    def encoding_of(self, name: str) -> dict:
        """The parsed encoding of modality ``name``."""
        if name in self.encodings:
            return self.encodings[name]
        return _parse_encoding(name, DEFAULT_ENCODINGS.get(name, 'image'))

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

    def _load_one(self, name: str, path: str, sample: str) -> np.ndarray:
        enc = self.encoding_of(name)
        if enc['encoding'] == 'rgb':
            try:
                # the RGB decoding of the RGB-D loader (same arguments)
                return LoadRGBDImageFromFile._load_rgb(self,
                                                       path).astype(np.float32)
            except FileNotFoundError as e:
                raise FileNotFoundError(
                    f"Modality 'rgb': image file {path} does not exist."
                ) from e
        what = f'{name} image'
        try:
            img = read_image_unchanged(path, what, self.backend_args,
                                       self.imdecode_backend)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f'Modality {name!r}: {what} file {path} of the sample '
                f'{sample} does not exist.') from e
        try:
            return encode_modality(img, enc['encoding'], enc['scale'],
                                   enc['range'], f'{name} image {path}')
        except ValueError as e:
            raise ValueError(
                f'{e} ({self.__class__.__name__}: the encoding of '
                f"{name!r} is {enc['encoding']!r}; choose another with "
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
            (self._load_one(name, paths[name], paths['rgb']), f'{name} image',
             f' of {paths[name]}'), f" of {paths['rgb']}")

    def _stack(self, results: dict, rgb: np.ndarray, names: Sequence[str],
               load: Callable[[str], Tuple[np.ndarray, str,
                                           str]], rgb_source: str) -> dict:
        """Stack RGB (H, W, 3) and the other modalities into ``img``.

        Args:
            results (dict): Gets ``img`` (float32, (H, W, 3K)),
                ``img_shape``, ``ori_shape`` and ``modalities``.
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
        h, w = rgb.shape[:2]
        img = np.empty((h, w, 3 * len(names)), dtype=np.float32)
        img[..., :3] = rgb
        stretched = []
        for i, name in enumerate(names[1:], start=1):
            x, what, source = load(name)
            if x.shape[:2] != (h, w) and name in self.resize_to_rgb:
                x = nearest_resize(x, (h, w))
            aligned, was_stretched = match_rgb_size(
                x, (h, w), policy, what, source, rgb_source,
                ' (Or list the modality in resize_to_rgb to resize it at '
                'load, nearest.)')
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
    0..255); for an inference API that puts it in place of the config's
    file loader.

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
    - modalities

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

        def load(m: str) -> Tuple[np.ndarray, str, str]:
            enc = self.encoding_of(m)
            return encode_modality(
                np.asarray(arrays[m]), enc['encoding'], enc['scale'],
                enc['range'], f'{m} array'), f'{m} array', ''

        return self._stack(results, rgb, names, load, '')


@TRANSFORMS.register_module()
class LoadMultiModalAnnotations(LoadRGBDAnnotations):
    """:class:`LoadRGBDAnnotations` that also reads multi-channel labels.

    The DeLiVER and MFNet code reads label maps with
    ``torchvision.io.read_image(path)[0]``: the FIRST channel (red, in RGB
    order) of whatever the file holds. Here a 3- or 4-channel label file
    gives its channel ``channel`` (RGB(A) order); a one-channel file is
    read as is. The rest (``reduce_zero_label``, ``label_map``, the size
    and range checks) is :class:`LoadRGBDAnnotations`.

    Args:
        channel (int): Channel of a multi-channel label file, RGB(A) order.
            Defaults to 0 (red), as the DeLiVER / MFNet code.
        **kwargs: See :class:`LoadRGBDAnnotations`.
    """

    def __init__(self, channel: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channel = int(channel)

    def _read(self, path: str) -> np.ndarray:
        seg = read_image_unchanged(path, 'label', self.backend_args,
                                   self.imdecode_backend)
        if seg.ndim == 3:
            if not 0 <= self.channel < seg.shape[2]:
                raise ValueError(
                    f'Label file {path} has {seg.shape[2]} channels; '
                    f'channel={self.channel} does not exist.')
            seg = seg[..., self.channel]
        return seg

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', channel={self.channel})'

"""Loading an RGB-D pair as one 6-channel image, and its label map."""
import logging
from typing import Optional, Sequence

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

from ...utils.mmseg_api_guard import mmseg_api_hint
from .modality_encoding import (DEPTH_ENCODINGS, ModalityEncoding,
                                replace_non_finite)
from .size_mismatch import (check_size_mismatch, match_rgb_size,
                            resolve_size_mismatch, stash_unaligned)

__all__ = [
    'DEPTH_ENCODINGS', 'replace_non_finite', 'read_depth_image',
    'encode_depth', 'LoadRGBDImageFromFile', 'LoadRGBDImageFromNDArray',
    'LoadRGBDAnnotations'
]


def _read_bytes(path: str, what: str, backend_args: Optional[dict]) -> bytes:
    try:
        content = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{what} file {path} does not exist.') from e
    if not content:
        raise OSError(f'{what} file {path} is empty (0 bytes): an '
                      'interrupted copy or download? Copy it again, or drop '
                      'the sample from the list file.')
    return content


def _decode_cv2(content: bytes, flag: int, path: str, what: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(content, np.uint8), flag)
    if img is None:
        raise OSError(f'Cannot decode {what} file {path}: the file is '
                      'corrupt or not an image.')
    return img


def read_depth_image(path: str,
                     backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a depth image as stored (``cv2.IMREAD_UNCHANGED``).

    Returns:
        np.ndarray: (H, W) with the file's dtype (8/16-bit, float), or
        (H, W, C); a 3-channel image is returned in RGB order.
    """
    content = _read_bytes(path, 'depth image', backend_args)
    depth = _decode_cv2(content, cv2.IMREAD_UNCHANGED, path, 'depth image')
    if depth.ndim == 3 and depth.shape[2] == 3:
        depth = cv2.cvtColor(depth, cv2.COLOR_BGR2RGB)
    return depth


def encode_depth(depth: np.ndarray,
                 depth_encoding: str = 'raw',
                 depth_scale: float = 1.0,
                 depth_range: Optional[Sequence[float]] = None,
                 source: str = 'depth') -> np.ndarray:
    """Encode a decoded depth image as the 3 depth channels of the input.

    The encoding of :class:`LoadRGBDImageFromFile`, i.e.
    :meth:`ModalityEncoding.encode` of a depth encoding; used for files and
    for in-memory arrays alike.

    Args:
        depth (np.ndarray): (H, W), (H, W, 1) or (H, W, 3) (RGB order), any
            numeric dtype, values as stored.
        depth_encoding, depth_scale, depth_range: As in
            :class:`LoadRGBDImageFromFile`.
        source (str): Names the input in error messages (e.g. its path).

    Returns:
        np.ndarray: float32 (H, W, 3). NaN/inf of a float depth image are
        read as 0, "no measurement" (:func:`replace_non_finite`, one
        warning per file).
    """
    return ModalityEncoding(depth_encoding, depth_scale,
                            depth_range).encode(depth, source)


def _set_rgbd(results: dict, rgb: np.ndarray, depth: np.ndarray, policy: str,
              source: str, rgb_source: str, loader) -> dict:
    """Stack RGB (H, W, 3) and encoded depth (h, w, 3) into ``img``; a
    depth of another size is handled by ``policy`` (see
    :mod:`.size_mismatch`); ``source`` / ``rgb_source`` name the inputs in
    errors. Also writes ``modalities`` (``('rgb', 'depth')``) and
    ``modality_encodings`` (``loader``'s depth encoding), as
    :class:`LoadMultiModalImageFromFile` does."""
    aligned, stretched = match_rgb_size(depth, rgb.shape[:2], policy,
                                        'Depth image', source, rgb_source)
    img = np.empty(rgb.shape[:2] + (6, ), dtype=np.float32)
    img[..., :3] = rgb
    img[..., 3:] = aligned
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    results['ori_shape'] = img.shape[:2]
    results['modalities'] = ('rgb', 'depth')
    results['modality_encodings'] = dict(
        rgb=dict(encoding='rgb', scale=1.0, range=None),
        depth=dict(
            encoding=loader.depth_encoding,
            scale=loader.depth_scale,
            range=loader.depth_range))
    if stretched:
        stash_unaligned(results, 'depth', (3, 6), depth)
    return results


@TRANSFORMS.register_module()
class LoadRGBDImageFromFile(BaseTransform):
    """Load an RGB image and its depth image as one 6-channel float image.

    Channels 0-2 of ``img`` are R, G, B (0..255), channels 3-5 the depth
    encoding. All geometric transforms of mmseg then move both modalities
    (and the label) together; only photometric transforms must be restricted
    to the RGB channels (see :class:`RGBColorJitter`).

    Depth encodings (``depth_encoding``):

    - ``'raw'`` (default, the published setting): the stored value, 8- or
      16-bit (NYUDv2 16-bit millimetres reach ~20000; the data preprocessor
      divides by 255 like the GeminiFusion release).
    - ``'scale'``: the stored value times ``depth_scale`` (e.g. ``1e-3``
      for millimetres -> metres, or ``255 / 10000`` to bring 0..10 m into
      0..255).
    - ``'clip'``: clip to ``depth_range=(min, max)`` (stored units) and map
      linearly to 0..255.
    - ``'hha'``: a 3-channel encoded image (e.g. HHA), taken as is (RGB
      order).

    A single-channel depth map is repeated to 3 channels. A 3-channel depth
    file with an encoding other than ``'hha'`` must have 3 equal channels
    (then one is used), otherwise it is an error.

    A depth image of another size than the RGB image follows
    ``size_mismatch`` (see
    :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`):
    ``'error'`` refuses it, ``'crop'`` centre-crops it to the RGB size
    (TokenFusion's ``CropAlignToMask``), ``'stretch'`` (the GeminiFusion
    release, e.g. the TokenFusion NYUDv2 copy, whose depth is the full
    480x640 frame beside border-cropped RGB) stretches it onto the RGB
    image and keeps it at its own size for the first resize of the
    pipeline (``results['unaligned_modalities']``).

    Required Keys:

    - img_path
    - depth_path
    - size_mismatch (optional: the dataset's policy)

    Added Keys:

    - img (np.float32, (H, W, 6), H x W the RGB size)
    - img_shape
    - ori_shape
    - modalities (``('rgb', 'depth')``, the channel order)
    - modality_encodings (dict name -> dict(encoding, scale, range), the
      depth encoding of this loader)
    - unaligned_modalities (only for a stretched depth image)

    Args:
        depth_encoding (str): One of ``'raw'``, ``'scale'``, ``'clip'``,
            ``'hha'``. Defaults to 'raw'.
        depth_scale (float): Factor of the ``'scale'`` encoding.
            Defaults to 1.0.
        depth_range (tuple[float, float], optional): ``(min, max)`` of the
            ``'clip'`` encoding. Defaults to None.
        imdecode_backend (str): Decoder of the RGB image, ``'cv2'`` or
            ``'pillow'`` (the GeminiFusion release decodes with Pillow; for
            PNG both agree, JPEG decoders may differ by a grey level).
            The depth image is always decoded by OpenCV with
            ``IMREAD_UNCHANGED``. Defaults to 'cv2'.
        backend_args (dict, optional): Arguments to instantiate a file
            backend, see :func:`mmengine.fileio.get`. Defaults to None.
        size_mismatch (str, optional): 'stretch', 'crop' or 'error' for a
            depth image of another size than RGB; None (recommended) takes
            the sample's (its dataset's ``size_mismatch``, 'error' if it
            has none). Defaults to None.
    """

    def __init__(self,
                 depth_encoding: str = 'raw',
                 depth_scale: float = 1.0,
                 depth_range: Optional[Sequence[float]] = None,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None,
                 size_mismatch: Optional[str] = None) -> None:
        if depth_encoding not in DEPTH_ENCODINGS:
            raise ValueError(
                f'LoadRGBDImageFromFile: unknown depth_encoding '
                f'{depth_encoding!r}; choose one of {DEPTH_ENCODINGS}.')
        if depth_encoding == 'clip':
            if depth_range is None or len(depth_range) != 2 or not (
                    depth_range[1] > depth_range[0]):
                raise ValueError(
                    "LoadRGBDImageFromFile: depth_encoding='clip' needs "
                    'depth_range=(min, max) with max > min, got '
                    f'{depth_range!r}.')
        if imdecode_backend not in ('cv2', 'pillow'):
            raise ValueError(
                'LoadRGBDImageFromFile: imdecode_backend must be cv2 or '
                f'pillow, got {imdecode_backend!r}.')
        self.depth_encoding = depth_encoding
        self.depth_scale = float(depth_scale)
        self.depth_range = None if depth_range is None else tuple(
            float(v) for v in depth_range)
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args.copy() if backend_args else None
        self.size_mismatch = check_size_mismatch(
            size_mismatch, self.__class__.__name__, allow_none=True)

    def _load_rgb(self, path: str) -> np.ndarray:
        content = _read_bytes(path, 'RGB image', self.backend_args)
        if self.imdecode_backend == 'cv2':
            img = _decode_cv2(content,
                              cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
                              path, 'RGB image')
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        try:
            return mmcv.imfrombytes(
                content,
                flag='color_ignore_orientation',
                channel_order='rgb',
                backend='pillow')
        except Exception as e:  # PIL.UnidentifiedImageError, OSError ...
            raise OSError(f'Cannot decode RGB image file {path}: the file is '
                          f'corrupt or not an image ({e}).') from e

    def _load_depth(self, path: str) -> np.ndarray:
        """Read a depth image and return its float32 (H, W, 3) encoding."""
        return self.encode_depth(
            read_depth_image(path, self.backend_args), path)

    def encode_depth(self,
                     depth: np.ndarray,
                     source: str = 'depth') -> np.ndarray:
        """Apply this loader's depth encoding to a decoded depth array.

        See :func:`encode_depth`; ``source`` names the input in errors.
        """
        return encode_depth(depth, self.depth_encoding, self.depth_scale,
                            self.depth_range, source)

    def transform(self, results: dict) -> dict:
        """Load the pair.

        Args:
            results (dict): Result dict with ``img_path`` and ``depth_path``.

        Returns:
            dict: The dict with ``img`` (float32, (H, W, 6)), ``img_shape``
            and ``ori_shape``.
        """
        if 'depth_path' not in results:
            raise KeyError(
                'LoadRGBDImageFromFile: the sample has no depth_path; build '
                'the data set with an RGB-D dataset type (RGBDDataset, '
                f"NYUDv2Dataset, SUNRGBDDataset). Got keys {list(results)}. " +
                mmseg_api_hint('An RGB-only caller (e.g. mmseg.apis.'
                               'inference_model, MMSegInferencer)'))
        img_path, depth_path = results['img_path'], results['depth_path']
        rgb = self._load_rgb(img_path)
        depth = self._load_depth(depth_path)
        policy = resolve_size_mismatch(results, self.size_mismatch,
                                       self.__class__.__name__)
        return _set_rgbd(results, rgb, depth, policy, f' of {depth_path}',
                         f' of {img_path}', self)

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        repr_str += f"(depth_encoding='{self.depth_encoding}', "
        if self.depth_encoding == 'scale':
            repr_str += f'depth_scale={self.depth_scale}, '
        if self.depth_encoding == 'clip':
            repr_str += f'depth_range={self.depth_range}, '
        repr_str += f"imdecode_backend='{self.imdecode_backend}', "
        repr_str += f'backend_args={self.backend_args}'
        if self.size_mismatch is not None:
            repr_str += f", size_mismatch='{self.size_mismatch}'"
        return repr_str + ')'


@TRANSFORMS.register_module()
class LoadRGBDImageFromNDArray(LoadRGBDImageFromFile):
    """:class:`LoadRGBDImageFromFile` for arrays already in memory.

    Same arguments and the same depth encoding; the inference API
    (:func:`geminifusion_mmseg.apis.inference_model`) puts it in place of
    the config's file loader.

    Required Keys:

    - img (np.ndarray, (H, W, 3), **RGB order**, 0..255)
    - depth (np.ndarray, (h, w), (h, w, 1) or (h, w, 3) (HHA, RGB order);
      values as stored, any numeric dtype; another size than ``img``
      follows ``size_mismatch``)
    - size_mismatch (optional)

    Modified Keys:

    - img (np.float32, (H, W, 6))

    Added Keys:

    - img_shape
    - ori_shape
    - modalities, modality_encodings (as :class:`LoadRGBDImageFromFile`)
    - unaligned_modalities (only for a stretched depth)

    Removed Keys:

    - depth
    """

    def transform(self, results: dict) -> dict:
        """Encode the pair.

        Args:
            results (dict): Result dict with ``img`` and ``depth`` arrays.

        Returns:
            dict: The dict with ``img`` (float32, (H, W, 6)), ``img_shape``
            and ``ori_shape``.
        """
        if 'img' not in results or 'depth' not in results:
            raise KeyError('LoadRGBDImageFromNDArray needs the arrays '
                           f"'img' and 'depth'; got keys {list(results)}.")
        rgb = results['img']
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'RGB image has shape {rgb.shape}; expected '
                             '(H, W, 3).')
        source = results.get('depth_path') or 'array'
        depth = self.encode_depth(results.pop('depth'), source)
        policy = resolve_size_mismatch(results, self.size_mismatch,
                                       self.__class__.__name__)
        return _set_rgbd(results, rgb, depth, policy, f' of {source}',
                         f" of {results.get('img_path') or 'the array'}", self)


@TRANSFORMS.register_module()
class LoadRGBDAnnotations(LoadAnnotations):
    """Load and check the label map of an RGB-D sample.

    Like mmseg's :class:`LoadAnnotations` (``reduce_zero_label``: 0 -> 255,
    v -> v - 1; then ``label_map``), with checks:

    - the label map must have the size of the image loaded before it
      (``results['ori_shape']``), otherwise an error names the path and
      both sizes (so load labels BEFORE any resize of the image);
    - after ``reduce_zero_label`` and ``label_map``, values
      ``>= num_classes`` other than 255 are set to 255 (ignored); the first
      file where this happens is reported with a warning (once per
      transform instance, i.e. per data-loader worker).

    Labels are read unchanged (8- or 16-bit); a colour (3-channel) label map
    is an error.

    Required Keys:

    - seg_map_path
    - reduce_zero_label
    - seg_fields
    - label_map (optional)
    - num_classes (optional, added by :class:`RGBDDataset`)
    - ori_shape (optional, for the size check)

    Added Keys:

    - gt_seg_map (np.uint8, (H, W))

    Args:
        num_classes (int, optional): Number of classes; None takes
            ``results['num_classes']`` (set by :class:`RGBDDataset` from its
            metainfo); if neither is known, no range check. Defaults to None.
        reduce_zero_label (bool, optional): None (recommended) follows the
            dataset's ``reduce_zero_label``. Defaults to None.
        imdecode_backend (str): Decoder backend. Defaults to 'pillow'.
        backend_args (dict, optional): Arguments to instantiate a file
            backend. Defaults to None.
    """

    def __init__(self,
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
        self._warned = False

    def _read(self, path: str) -> np.ndarray:
        content = _read_bytes(path, 'label', self.backend_args)
        if self.imdecode_backend == 'cv2':
            seg = _decode_cv2(content, cv2.IMREAD_UNCHANGED, path, 'label')
        else:
            try:
                seg = mmcv.imfrombytes(
                    content, flag='unchanged', backend=self.imdecode_backend)
            except Exception as e:
                raise OSError(f'Cannot decode label file {path}: the file is '
                              f'corrupt or not an image ({e}).') from e
            if seg is None:
                raise OSError(f'Cannot decode label file {path}.')
        if seg.ndim == 3 and seg.shape[2] == 1:
            seg = seg[..., 0]
        if seg.ndim != 2:
            raise ValueError(
                f'Label file {path} has shape {seg.shape}; expected a '
                'single-channel map of class indices (not a colour image).')
        return seg

    def _load_seg_map(self, results: dict) -> None:
        if 'seg_map_path' not in results:
            raise KeyError(
                'LoadRGBDAnnotations: the sample has no seg_map_path (was '
                "the dataset built without data_prefix['seg_map_path']?).")
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
                'LoadRGBDAnnotations: reduce_zero_label='
                f'{reduce_zero_label} but the dataset was built with '
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
                        f'LoadRGBDAnnotations: label file {path} holds '
                        f'values >= num_classes={num_classes} (other than '
                        f'255): {shown}{" ..." if len(values) > 10 else ""}'
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
        repr_str += f'backend_args={self.backend_args})'
        return repr_str

"""The RGB-D loaders: :mod:`.multimodal`'s loaders for ``('rgb', 'depth')``.

``LoadRGBDImageFromFile``, ``LoadRGBDImageFromNDArray`` and
``LoadRGBDAnnotations`` are the names of every RGB-D config. Each is the
K-modality class of :mod:`.multimodal` (one loading implementation) with
the RGB-D defaults: the modalities ``('rgb', 'depth')``, the depth encoding
given as ``depth_encoding`` / ``depth_scale`` / ``depth_range`` (one
:class:`~.modality_encoding.ModalityEncoding`), depth always decoded by
OpenCV, the sample's ``img_path`` / ``depth_path`` (``depth`` array), a
colour label file refused; and their error messages. Their outputs are the
K-modality loaders' for the same sample, byte for byte.
"""
from typing import Optional, Sequence

import numpy as np
from mmseg.registry import TRANSFORMS

from ...utils.mmseg_api_guard import mmseg_api_hint
from ..modalities import RGBD_MODALITIES
from .image_io import read_depth_image
from .modality_encoding import (DEPTH_ENCODINGS, ModalityEncoding,
                                replace_non_finite)
from .multimodal import (LoadMultiModalAnnotations,
                         LoadMultiModalImageFromFile,
                         LoadMultiModalImageFromNDArray)

__all__ = [
    'DEPTH_ENCODINGS', 'replace_non_finite', 'read_depth_image',
    'encode_depth', 'LoadRGBDImageFromFile', 'LoadRGBDImageFromNDArray',
    'LoadRGBDAnnotations'
]


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


@TRANSFORMS.register_module()
class LoadRGBDImageFromFile(LoadMultiModalImageFromFile):
    """Load an RGB image and its depth image as one 6-channel float image.

    :class:`LoadMultiModalImageFromFile` with ``modalities=('rgb',
    'depth')`` and ``encodings=dict(depth=dict(encoding=depth_encoding,
    scale=depth_scale, range=depth_range))``: the same results, byte for
    byte. Channels 0-2 of ``img`` are R, G, B (0..255), channels 3-5 the
    depth encoding. All geometric transforms of mmseg then move both
    modalities (and the label) together; only photometric transforms must
    be restricted to the RGB channels (see :class:`RGBColorJitter`).

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
    - depth_path (or modality_paths with 'rgb' and 'depth')
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

    modality_imdecode_backend = 'cv2'
    _errors_name_modality = False

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
        super().__init__(
            modalities=RGBD_MODALITIES,
            encodings=dict(
                depth=dict(
                    encoding=depth_encoding,
                    scale=depth_scale,
                    range=depth_range)),
            imdecode_backend=imdecode_backend,
            backend_args=backend_args,
            size_mismatch=size_mismatch)

    @property
    def depth_encoding(self) -> str:
        """The depth encoding ('raw', 'scale', 'clip' or 'hha')."""
        return self.modality_encoding('depth').encoding

    @property
    def depth_scale(self) -> float:
        """The factor of the 'scale' encoding."""
        return self.modality_encoding('depth').scale

    @property
    def depth_range(self) -> Optional[tuple]:
        """``(min, max)`` of the 'clip' encoding (floats), or None."""
        return self.modality_encoding('depth').range

    def encode_depth(self,
                     depth: np.ndarray,
                     source: str = 'depth') -> np.ndarray:
        """Apply this loader's depth encoding to a decoded depth array.

        See :func:`encode_depth`; ``source`` names the input in errors.
        """
        return self.modality_encoding('depth').encode(depth, source)

    def _sample_paths(self, results: dict) -> dict:
        if 'depth_path' not in results and 'modality_paths' not in results:
            raise KeyError(
                f'{self.__class__.__name__}: the sample has no depth_path; '
                'build the data set with an RGB-D dataset type '
                '(RGBDDataset, NYUDv2Dataset, SUNRGBDDataset). Got keys '
                f'{list(results)}. ' +
                mmseg_api_hint('An RGB-only caller (e.g. mmseg.apis.'
                               'inference_model, MMSegInferencer)'))
        return super()._sample_paths(results)

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
class LoadRGBDImageFromNDArray(LoadRGBDImageFromFile,
                               LoadMultiModalImageFromNDArray):
    """:class:`LoadRGBDImageFromFile` for arrays already in memory.

    Same arguments and the same depth encoding; the inference API
    (:func:`geminifusion_mmseg.apis.inference_model`) puts it in place of
    the config's file loader. It is
    :class:`LoadMultiModalImageFromNDArray` with ``modality_arrays=
    {'depth': depth}``.

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
        results['modality_arrays'] = dict(depth=results.pop('depth'))
        # LoadMultiModalImageFromNDArray's (the next class in the MRO)
        return super().transform(results)


@TRANSFORMS.register_module()
class LoadRGBDAnnotations(LoadMultiModalAnnotations):
    """Load and check the label map of an RGB-D sample.

    :class:`LoadMultiModalAnnotations` with ``channel=None``: a colour
    (multi-channel) label file is an error. Like mmseg's
    :class:`LoadAnnotations` (``reduce_zero_label``: 0 -> 255, v -> v - 1;
    then ``label_map``), with the size and range checks of
    :class:`LoadMultiModalAnnotations`. Labels are read unchanged (8- or
    16-bit).

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
            channel=None,
            num_classes=num_classes,
            reduce_zero_label=reduce_zero_label,
            imdecode_backend=imdecode_backend,
            backend_args=backend_args)

"""List files: reading them, and checking the columns of their first sample.

* :func:`read_list_file`: the lines of a list file, with a UTF-8 (or
  UTF-16) byte-order mark removed and a file that is not text refused with
  its name.
* :func:`check_first_sample`: the first sample of an ``rgb label depth``
  list, read once at dataset construction, must look like an RGB image, a
  class-index map and a depth image; swapped columns (a 16-bit "RGB"
  image, a 3-channel "label", a "label" whose values are mostly no class)
  are refused with the list file, the line and the file named.
"""
import codecs
from typing import List, Optional

import cv2
import mmengine.fileio as fileio
import numpy as np

from .transforms.image_io import decode_cv2, read_file_bytes

__all__ = ['ListFileError', 'read_list_file', 'check_first_sample']

#: At least this fraction of the first label map's pixels must be class
#: ids or 255 (ignore), else the label column is taken for something else.
MIN_VALID_LABEL_FRACTION = 0.5

_COLUMNS = ("the columns of a list line are 'rgb label depth' "
            '(docs/dataset_prepare.md)')


class ListFileError(ValueError):
    """A list file, or the first sample it names, that cannot be right."""


def read_list_file(path: str,
                   backend_args: Optional[dict] = None,
                   owner: str = 'dataset') -> List[str]:
    """The lines of a list file (``splitlines``), byte-order mark removed.

    Args:
        path (str): The list file.
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.
        owner (str): Names the dataset in messages.

    Returns:
        list[str]: The lines.

    Raises:
        ListFileError: The file is not UTF-8 / UTF-16 text.
    """
    data = fileio.get(path, backend_args=backend_args)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = 'utf-16'
    else:
        encoding = 'utf-8-sig'  # drops a UTF-8 BOM (Windows editors)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ListFileError(
            f'{owner}: list file {path} is not UTF-8 text (byte {e.start}: '
            f'{data[e.start:e.start + 4]!r}); save it as UTF-8, one sample '
            'per line.') from None
    return text.splitlines()


def _read(path: str, what: str, where: str, backend_args: Optional[dict],
          owner: str) -> np.ndarray:
    try:
        return decode_cv2(
            read_file_bytes(path, what, backend_args), cv2.IMREAD_UNCHANGED,
            path, what)
    except OSError as e:  # empty, corrupt: say which line lists it
        raise type(e)(f'{owner}: {where}: {e}') from e


def _describe(img: np.ndarray) -> str:
    channels = 1 if img.ndim == 2 else img.shape[2]
    return f'a {channels}-channel {img.dtype} image of shape {img.shape}'


def _is_grey(img: np.ndarray) -> bool:
    """Whether a 3-channel image has equal channels (a grey image)."""
    return bool((img[..., 0] == img[..., 1]).all()
                and (img[..., 1] == img[..., 2]).all())


def check_first_sample(info: dict,
                       where: str,
                       num_classes: Optional[int] = None,
                       backend_args: Optional[dict] = None,
                       owner: str = 'dataset') -> None:
    """Refuse a first sample whose columns are in the wrong order.

    Reads the sample's RGB image and label map (as stored; the depth
    file only when the RGB image is single-channel):

    * the RGB image must not be single-channel 16-bit (or float): that is
      a depth map; a single-channel 8-bit one must not come with a colour
      image (3 channels, not all equal) in the depth column;
    * the label map must be single-channel (a 3-channel "label" is an RGB
      or HHA image);
    * with ``num_classes`` known, at least
      :data:`MIN_VALID_LABEL_FRACTION` of the label's pixels must be class
      ids (after ``reduce_zero_label`` and ``label_map``) or 255; a depth
      map read as labels is mostly out of range (it would train on an
      all-ignored label: loss 0, accuracy 100).

    Args:
        info (dict): The data info (``img_path``, ``depth_path``,
            ``seg_map_path``,
            ``reduce_zero_label``, ``label_map``).
        where (str): Where the sample is listed, e.g. ``'line 1 of
            train.txt'``.
        num_classes (int, optional): Classes of the dataset.
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.
        owner (str): Names the dataset in messages.

    Raises:
        ListFileError: A column does not hold what it should.
    """
    rgb_path = info['img_path']
    rgb = _read(rgb_path, 'RGB image', where, backend_args, owner)
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        if rgb.dtype != np.uint8:
            raise ListFileError(
                f'{owner}: {where}: the RGB file {rgb_path} is '
                f'{_describe(rgb)}, which looks like a depth map, not a '
                f'colour image. Are the columns swapped? {_COLUMNS}.')
        depth_path = info.get('depth_path')
        if depth_path:  # an 8-bit depth map: is the colour image there?
            depth = _read(depth_path, 'depth', where, backend_args, owner)
            if depth.ndim == 3 and depth.shape[2] == 3 and \
                    not _is_grey(depth):
                raise ListFileError(
                    f'{owner}: {where}: the RGB file {rgb_path} is '
                    f'{_describe(rgb)} and the depth file {depth_path} is '
                    'a colour image: are the RGB and depth columns '
                    f'swapped? {_COLUMNS}.')
    seg_path = info.get('seg_map_path')
    if seg_path is None:
        return
    seg = _read(seg_path, 'label', where, backend_args, owner)
    if seg.ndim == 3 and seg.shape[2] > 1:
        raise ListFileError(
            f'{owner}: {where}: the label file {seg_path} is '
            f'{_describe(seg)}; a label must be a single-channel map of '
            f'class ids. Is it the RGB (or HHA) image? {_COLUMNS}.')
    if num_classes is None:
        return
    stored = _describe(seg)
    seg = seg.reshape(seg.shape[:2]).astype(np.int64)
    if info.get('reduce_zero_label', False):
        seg = np.where(seg == 0, 255, np.where(seg == 255, 255, seg - 1))
    for old, new in (info.get('label_map') or {}).items():
        seg = np.where(seg == old, new, seg)
    valid = (seg < num_classes) | (seg == 255)
    if valid.mean() < MIN_VALID_LABEL_FRACTION:
        values = np.unique(seg[~valid])
        shown = ', '.join(
            str(v) for v in values[:6]) + (' ...' if len(values) > 6 else '')
        raise ListFileError(
            f'{owner}: {where}: only {100 * valid.mean():.1f}% of the pixels '
            f'of the label file {seg_path} ({stored}) are class ids '
            f'0..{num_classes - 1} or 255 (ignore); others: {shown}. Is it a '
            f'depth map? {_COLUMNS}. If the labels are right, check the '
            "dataset's classes, reduce_zero_label and label_map "
            '(check_files=False skips this check).')

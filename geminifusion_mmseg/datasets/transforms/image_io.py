"""Reading one image file as the loaders decode it.

The one place where the loading transforms (:mod:`.multimodal`, and the
RGB-D names of :mod:`.loading`), the list-file checks and the inference
API read bytes and decode them:

* :func:`read_rgb_image`: a colour image -> (H, W, 3) uint8, RGB order;
* :func:`read_image_unchanged`: any image as stored (bit depth and
  channels kept), RGB(A) order;
* :func:`read_depth_image`: a depth image as stored, always decoded by
  OpenCV (what the RGB-D loaders have always done).

Every error names the file: a missing file (FileNotFoundError), an empty
one or one that is not an image (OSError).
"""
import io
from typing import Optional

import cv2
import mmcv
import mmengine.fileio as fileio
import numpy as np

__all__ = [
    'read_file_bytes', 'decode_cv2', 'read_rgb_image', 'read_image_unchanged',
    'read_depth_image', 'IMDECODE_BACKENDS'
]

#: Decoders of the loaders' ``imdecode_backend``.
IMDECODE_BACKENDS = ('cv2', 'pillow')


def read_file_bytes(path: str, what: str,
                    backend_args: Optional[dict]) -> bytes:
    """The bytes of ``path`` (any mmengine file backend).

    Args:
        path (str): The file.
        what (str): Names the file in errors (``'depth image'``).
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.

    Raises:
        FileNotFoundError: ``'{what} file {path} does not exist.'``
        OSError: The file is empty (0 bytes).
    """
    try:
        content = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'{what} file {path} does not exist.') from e
    if not content:
        raise OSError(f'{what} file {path} is empty (0 bytes): an '
                      'interrupted copy or download? Copy it again, or drop '
                      'the sample from the list file.')
    return content


def decode_cv2(content: bytes, flag: int, path: str, what: str) -> np.ndarray:
    """``cv2.imdecode(content, flag)``; OSError naming ``path`` if OpenCV
    cannot decode it. Channels in OpenCV's (BGR) order."""
    img = cv2.imdecode(np.frombuffer(content, np.uint8), flag)
    if img is None:
        raise OSError(f'Cannot decode {what} file {path}: the file is '
                      'corrupt or not an image.')
    return img


def read_rgb_image(path: str,
                   imdecode_backend: str = 'cv2',
                   backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a colour image as the loaders' RGB modality.

    Args:
        path (str): The file.
        imdecode_backend (str): ``'cv2'`` (``IMREAD_COLOR``, EXIF orientation
            ignored) or ``'pillow'`` (the GeminiFusion release; for PNG both
            agree, JPEG decoders may differ by a grey level).
        backend_args (dict, optional): See :func:`mmengine.fileio.get`.

    Returns:
        np.ndarray: (H, W, 3) uint8, RGB order (grey repeated, alpha
        dropped).
    """
    content = read_file_bytes(path, 'RGB image', backend_args)
    if imdecode_backend == 'cv2':
        img = decode_cv2(content,
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
    content = read_file_bytes(path, what, backend_args)
    if imdecode_backend == 'pillow':
        from PIL import Image
        try:
            with Image.open(io.BytesIO(content)) as pil:
                img = np.asarray(pil)
        except Exception as e:  # PIL.UnidentifiedImageError, OSError ...
            raise OSError(f'Cannot decode {what} file {path}: the file is '
                          f'corrupt or not an image ({e}).') from e
        return img
    img = decode_cv2(content, cv2.IMREAD_UNCHANGED, path, what)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def read_depth_image(path: str,
                     backend_args: Optional[dict] = None) -> np.ndarray:
    """Read a depth image as stored (``cv2.IMREAD_UNCHANGED``).

    :func:`read_image_unchanged` with OpenCV, whatever the loader's
    ``imdecode_backend``.

    Returns:
        np.ndarray: (H, W) with the file's dtype (8/16-bit, float), or
        (H, W, C); a 3-channel image is returned in RGB order.
    """
    return read_image_unchanged(path, 'depth image', backend_args, 'cv2')

"""Reading the MATLAB files of the official downloads.

MATLAB v7.3 files are HDF5 (read with h5py, an optional extra); older
(v5) files are read with ``scipy.io.loadmat``. Both raise a
:class:`ConverterError` naming the file when it is missing or of the other
kind.
"""
import os.path as osp
from typing import List

import numpy as np

from .output import ConverterError


def open_v73(path: str, what: str):
    """Open a MATLAB v7.3 file read-only as an ``h5py.File``.

    Args:
        path (str): The file.
        what (str): What it should be, for the messages.
    """
    try:
        import h5py
    except ImportError as e:
        raise ConverterError(
            f'Reading {path} (MATLAB v7.3) needs h5py: pip install -e '
            '".[converters]" (or pip install h5py).') from e
    if not osp.isfile(path):
        raise ConverterError(f'{what} {path} does not exist.')
    try:
        return h5py.File(path, 'r')
    except OSError as e:
        raise ConverterError(f'{path} is not a MATLAB v7.3 (HDF5) file '
                             f'({e}); expected {what}.') from e


def load_v5(path: str, what: str) -> dict:
    """``scipy.io.loadmat`` of a MATLAB v5 file (arrays unsqueezed)."""
    import scipy.io
    if not osp.isfile(path):
        raise ConverterError(f'{what} {path} does not exist.')
    try:
        return scipy.io.loadmat(path, squeeze_me=False)
    except NotImplementedError as e:  # v7.3
        raise ConverterError(f'{path} is a MATLAB v7.3 file; expected '
                             f'{what} (MATLAB v5).') from e


def mat_string(value) -> str:
    """A char array as scipy loads it (``array(['abc'])``) -> ``'abc'``."""
    value = np.asarray(value).ravel()
    return str(value[0]) if value.size else ''


def mat_strings(cell) -> List[str]:
    """A cell array of char as scipy loads it -> list of str."""
    return [mat_string(item) for item in np.asarray(cell).ravel(order='F')]

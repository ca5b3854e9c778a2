"""The output folder of a dataset converter: refused when unsafe, written
atomically.

Every converter writes into an :class:`OutputFolder`:

- the folder must be new, empty, or one that the same converter created
  before (it holds the marker file ``.geminifusion_converter``, so a
  finished or interrupted run can be redone in place); any other existing
  folder, a file, or a folder that is one of the converter's inputs is
  refused with a :class:`ConverterError` naming it;
- every file is written with :func:`~geminifusion_mmseg.utils.atomic_io.
  atomic_output` (the plugin's one atomic write): to a temporary file in
  its final folder, flushed to disk and renamed when complete, so an
  interrupted run or a full disk never leaves a truncated file under a
  final name; the temporary file is removed when writing fails, and files
  get mode ``0o666`` minus the umask (as ``open`` gives). Temporary files
  left by a killed run are removed when the converter writes into its own
  folder again.
"""
import os
import os.path as osp
import shutil
from typing import Callable, Iterable

import cv2
import numpy as np

from ...utils.atomic_io import atomic_output, remove_temp_files

MARKER = '.geminifusion_converter'


class ConverterError(RuntimeError):
    """Bad input or an unsafe output folder, with the path named."""


def _same_path(a: str, b: str) -> bool:
    return osp.realpath(a) == osp.realpath(b)


class OutputFolder:
    """A converter's output folder (see the module doc).

    Args:
        root (str): The output folder.
        tool (str): The converter's name, stored in the marker file; a
            folder made by another converter is refused.
        inputs (Iterable[str]): The converter's input files and folders;
            ``root`` may be none of them.
    """

    def __init__(self, root: str, tool: str, inputs: Iterable[str]) -> None:
        self.root = root
        self.tool = tool
        for path in inputs:
            if _same_path(root, path):
                raise ConverterError(
                    f'The output folder {root} is the input {path}; give a '
                    'new folder for the converted dataset.')
        if osp.exists(root) and not osp.isdir(root):
            raise ConverterError(
                f'The output {root} exists and is not a folder.')
        marker = osp.join(root, MARKER)
        if osp.isdir(root) and os.listdir(root):
            owner = None
            if osp.isfile(marker):
                with open(marker) as f:
                    owner = f.read().strip()
            if owner != tool:
                made_by = (f' (it was made by {owner})' if owner else '')
                raise ConverterError(
                    f'The output folder {root} is not empty and was not '
                    f'created by {tool}{made_by}; nothing was written. Give '
                    'a new or empty folder.')
        os.makedirs(root, exist_ok=True)
        if osp.isfile(marker):  # a run of ours before: drop its leftovers
            for folder, _, _ in os.walk(root):
                remove_temp_files(folder)
        else:
            self.write(MARKER, lambda tmp: _write_text(tmp, tool + '\n'))

    def path(self, rel: str) -> str:
        """The absolute path of ``rel`` (a '/'-separated path in root)."""
        return osp.join(self.root, *rel.split('/'))

    def write(self, rel: str, write_fn: Callable[[str], None]) -> str:
        """Write one file atomically.

        Args:
            rel (str): Path in the folder, e.g. ``'rgb/000001.png'``;
                missing sub-folders are created.
            write_fn (callable): ``write_fn(tmp_path)`` writes the complete
                file to ``tmp_path`` (same folder, same extension).

        Returns:
            str: The final path.
        """
        final = self.path(rel)
        with atomic_output(final) as tmp:
            write_fn(tmp)
        return final

    def write_png(self, rel: str, img: np.ndarray) -> str:
        """Write ``img`` as PNG: (H, W) 8/16-bit, or (H, W, 3) RGB uint8."""
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)

        def write(tmp: str) -> None:
            if not cv2.imwrite(tmp, np.ascontiguousarray(img)):
                raise ConverterError(f'Could not write {self.path(rel)}.')

        return self.write(rel, write)

    def copy(self, rel: str, src: str) -> str:
        """Copy the file ``src`` byte for byte to ``rel``."""
        return self.write(rel, lambda tmp: shutil.copyfile(src, tmp))

    def write_lines(self, rel: str, lines: Iterable[str]) -> str:
        """Write a text file of ``lines``, each ended by a newline."""
        text = ''.join(line + '\n' for line in lines)
        return self.write(rel, lambda tmp: _write_text(tmp, text))


def _write_text(path: str, text: str) -> None:
    with open(path, 'w', newline='\n') as f:
        f.write(text)

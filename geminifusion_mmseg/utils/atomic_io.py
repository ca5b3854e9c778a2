"""Writing files so that they are complete or absent.

Every file the plugin's tools write (checkpoints, converted checkpoints,
ONNX models, list files, predicted label maps, the dataset converters'
outputs) goes through this module:

* :func:`check_output_path` refuses a destination that is a folder or the
  source file itself;
* :func:`atomic_output` gives a temporary path in the destination's folder
  to write to and renames it over the destination once the writer
  returns; :func:`atomic_write_bytes` / :func:`atomic_write_text` do the
  same for data in memory.

A kill, a full disk or an exception while writing therefore leaves the
previous file (if any) as it was, never a truncated file under the final
name. Temporary files are named ``.<name>.<8 characters>.tmp`` (with the
destination's extension appended where the writer picks the format by
extension, e.g. ``.pred.png.1a2b3c4d.tmp.png``), created with mode
``0o666`` minus the umask, as a plain ``open(path, 'w')`` would; an
interrupted write can leave one behind, which :func:`remove_temp_files`
removes (only names of this pattern).
"""
import os
import os.path as osp
import re
import secrets
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

__all__ = [
    'OutputPathError', 'check_output_path', 'atomic_output',
    'create_temp_file', 'atomic_write_bytes', 'atomic_write_text',
    'is_temp_file_name', 'remove_temp_files'
]

#: Names of the temporary files of this module (and of the checkpoint
#: writes of earlier versions, made with ``tempfile.mkstemp``).
_TEMP_NAME = re.compile(
    r'^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<ext>\.[A-Za-z0-9]+)?$')


class OutputPathError(ValueError):
    """A destination that must not be written (a folder, the source)."""


def check_output_path(dst: str,
                      src: Optional[str] = None,
                      what: str = 'output file') -> str:
    """Refuse destinations that cannot be written safely.

    Args:
        dst (str): The file to write.
        src (str, optional): The file the output is made from; ``dst`` must
            not be the same file (same path, or a link to it).
        what (str): Names the destination in messages.

    Returns:
        str: ``dst``.

    Raises:
        OutputPathError: ``dst`` is an existing folder (or ends with a path
            separator), or the same file as ``src``.
    """
    dst = os.fspath(dst)
    if osp.isdir(dst) or dst.endswith((os.sep, '/')):
        raise OutputPathError(
            f'{what} {dst} is a folder; give a file name, e.g. '
            f'{osp.join(dst, "out" + (osp.splitext(src)[1] if src else ""))}'
            '. Nothing was written.')
    if src is not None and _same_file(dst, os.fspath(src)):
        raise OutputPathError(
            f'{what} {dst} is the input file {src} itself; refusing to '
            'overwrite the input. Write to another file. Nothing was '
            'written.')
    return dst


def _same_file(a: str, b: str) -> bool:
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.realpath(a) == osp.realpath(b)


def _fsync_dir(path: str) -> None:
    """Flush a directory entry (a rename) to disk where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_temp_file(filepath: str, keep_ext: bool) -> Tuple[int, str]:
    """Create ``.<name>.<random>.tmp[<ext>]`` next to ``filepath`` (mode
    0o666 minus the umask; its folder is created).

    Returns:
        tuple: (open descriptor for writing, path).
    """
    directory = osp.dirname(osp.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    name = osp.basename(filepath)
    ext = osp.splitext(name)[1] if keep_ext else ''
    while True:
        tmp = osp.join(directory, f'.{name}.{secrets.token_hex(4)}.tmp{ext}')
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                           0o666), tmp
        except FileExistsError:  # pragma: no cover - 1 in 4 billion
            continue


def _commit(tmp: str, filepath: str) -> None:
    os.replace(tmp, filepath)
    _fsync_dir(osp.dirname(osp.abspath(filepath)))


def _discard(tmp: str) -> None:
    try:
        os.remove(tmp)
    except FileNotFoundError:
        pass


@contextmanager
def atomic_output(dst: str,
                  src: Optional[str] = None,
                  what: str = 'output file') -> Iterator[str]:
    """A temporary path to write ``dst`` to; renamed to ``dst`` on success.

    Example::

        with atomic_output('model.onnx') as tmp:
            onnx.save(proto, tmp)      # any writer that takes a path

    The temporary file is in ``dst``'s folder and ends with ``dst``'s
    extension (for writers that pick the format by extension). If the
    block raises, it is removed and ``dst`` is left as it was.

    Args:
        dst (str): The file to write (checked by
            :func:`check_output_path`).
        src (str, optional): The input file, which ``dst`` must not be.
        what (str): Names the destination in messages.

    Yields:
        str: The temporary path.
    """
    check_output_path(dst, src, what)
    fd, tmp = create_temp_file(dst, keep_ext=True)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, 'rb+') as f:  # the writer may not have flushed it
            os.fsync(f.fileno())
        _commit(tmp, dst)
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_bytes(data: bytes, filepath: str) -> None:
    """Write ``data`` to ``filepath`` so that it is either complete or absent.

    The bytes go to ``.<name>.<random>.tmp`` in the same folder, are
    flushed to disk, and the file is renamed to ``filepath``. If anything
    fails the temporary file is removed and the error re-raised; an existing
    ``filepath`` is then left as it was.

    Args:
        data (bytes): The content.
        filepath (str): The target path; its folder is created.
    """
    check_output_path(filepath)
    fd, tmp = create_temp_file(filepath, keep_ext=False)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _commit(tmp, filepath)
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_text(text: str, filepath: str, encoding='utf-8') -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``."""
    atomic_write_bytes(text.encode(encoding), filepath)


def is_temp_file_name(name: str) -> bool:
    """Whether ``name`` (a base name) is one of this module's temporary
    files."""
    match = _TEMP_NAME.match(name)
    if match is None:
        return False
    ext = match.group('ext')  # if any, the extension of the target
    return ext is None or match.group('name').endswith(ext)


def remove_temp_files(directory: str) -> List[str]:
    """Delete the temporary files of interrupted writes in ``directory``.

    Only plain files directly in ``directory`` whose names match this
    module's pattern (``.<name>.<8 characters>.tmp[.<ext>]``) are removed;
    nothing else, no sub-folder.

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    if not osp.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        path = osp.join(directory, name)
        if is_temp_file_name(name) and osp.isfile(path) and \
                not osp.islink(path):
            try:
                os.remove(path)
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed

"""Pair RGB, depth and label files by name and write RGB-D list files.

The logic behind ``tools/dataset_converters/make_rgbd_lists.py``. A sample
is the set of files with the same *stem* (path inside its folder without
the extension, e.g. ``scene1/000017``) in the RGB, depth and label
folders. The list files use the 3-column layout (docs/dataset_prepare.md) that
:class:`~geminifusion_mmseg.datasets.RGBDDataset` reads::

    rgb/000017.png<TAB>label/000017.png<TAB>depth/000017.png

with paths relative to the dataset root (``data_root``).

Example::

    pairing = pair_by_stem('data/mydata', rgb='rgb', depth='depth',
                           label='label')
    pairing.check()                      # raises on duplicates
    train, val = split_by_ratio(pairing.samples, val_ratio=0.1, seed=0)
    write_list_file('data/mydata/train.txt', train)
"""
import os
import os.path as osp
import random
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..utils.atomic_io import atomic_write_text

__all__ = [
    'IMAGE_EXTENSIONS', 'Sample', 'Pairing', 'ListMakerError', 'scan_folder',
    'pair_by_stem', 'split_by_ratio', 'split_by_val_list', 'read_val_list',
    'format_list_line', 'write_list_file', 'make_lists'
]

#: File extensions considered as images (others, e.g. ``Thumbs.db`` or
#: ``.txt`` files, are skipped and counted).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


class ListMakerError(ValueError):
    """Input that list files cannot be written from."""


@dataclass(frozen=True)
class Sample:
    """One RGB-D sample: its stem and its three paths relative to root."""
    stem: str
    rgb: str
    label: str
    depth: str


@dataclass
class Pairing:
    """The result of :func:`pair_by_stem`.

    Attributes:
        root (str): The dataset root.
        folders (dict): ``kind -> folder`` relative to root, for 'RGB',
            'depth' and 'label'.
        samples (list[Sample]): Complete samples, sorted by stem.
        unpaired (dict): ``kind -> [path, ...]`` (relative to root): files
            whose stem is missing from at least one other folder.
        missing (dict): ``path -> [kind, ...]``: for every unpaired file
            the folders that lack its stem.
        duplicates (dict): ``kind -> {stem: [path, ...]}``: stems that name
            more than one file in a folder (``a.png`` and ``a.jpg``).
        bad_names (list[str]): Paths with whitespace, which list files
            cannot hold (columns are whitespace-separated).
        skipped (dict): ``kind -> number`` of files without an image
            extension.
    """
    root: str
    folders: Dict[str, str]
    samples: List[Sample] = field(default_factory=list)
    unpaired: Dict[str, List[str]] = field(default_factory=dict)
    missing: Dict[str, List[str]] = field(default_factory=dict)
    duplicates: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    bad_names: List[str] = field(default_factory=list)
    skipped: Dict[str, int] = field(default_factory=dict)

    @property
    def num_unpaired(self) -> int:
        return sum(len(v) for v in self.unpaired.values())

    def problems(self) -> List[str]:
        """Blocking problems (duplicates, unusable names), one per line."""
        lines = []
        for kind, dups in self.duplicates.items():
            for stem, paths in sorted(dups.items()):
                lines.append(f'duplicate {kind} stem {stem!r}: ' +
                             ', '.join(paths))
        for path in self.bad_names:
            lines.append(f'whitespace in file name (list files are '
                         f'whitespace-separated): {path!r}')
        return lines

    def check(self, allow_unpaired: bool = True) -> None:
        """Raise :class:`ListMakerError` on blocking problems.

        Args:
            allow_unpaired (bool): If False, unpaired files are an error
                too. Defaults to True (they are only reported).
        """
        lines = self.problems()
        if not allow_unpaired:
            lines += [
                f'unpaired {kind} file {path} (no ' +
                ', '.join(self.missing[path]) + ')'
                for kind, paths in self.unpaired.items() for path in paths
            ]
        if lines:
            raise ListMakerError(f'cannot write list files for {self.root}: ' +
                                 f'{len(lines)} problem(s):\n  ' +
                                 '\n  '.join(lines))
        if not self.samples:
            raise ListMakerError(
                f'no complete RGB-D sample in {self.root} (folders '
                f'{self.folders}); {self.num_unpaired} unpaired file(s)')


def _rel(path: str) -> str:
    """A relative path with forward slashes (portable list files)."""
    return path.replace(os.sep, '/')


def scan_folder(
    root: str,
    folder: str,
    extensions: Sequence[str] = IMAGE_EXTENSIONS
) -> Tuple[Dict[str, List[str]], int]:
    """Image files under ``root/folder`` (recursively), grouped by stem.

    Hidden files and folders (names starting with '.') are skipped.

    Args:
        root (str): Dataset root.
        folder (str): Folder relative to root.
        extensions (Sequence[str]): Accepted extensions (case-insensitive).

    Returns:
        tuple: ``{stem: [path relative to root, ...]}`` (a stem with more
        than one path is a duplicate) and the number of skipped non-image
        files.

    Raises:
        FileNotFoundError: The folder does not exist.
    """
    top = osp.join(root, folder)
    if not osp.isdir(top):
        raise FileNotFoundError(f'folder {top} does not exist')
    exts = tuple(e.lower() for e in extensions)
    stems: Dict[str, List[str]] = {}
    skipped = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        for name in sorted(filenames):
            if name.startswith('.'):
                continue
            stem, ext = osp.splitext(name)
            if ext.lower() not in exts:
                skipped += 1
                continue
            sub = osp.relpath(osp.join(dirpath, stem), top)
            stems.setdefault(_rel(sub), []).append(
                _rel(osp.relpath(osp.join(dirpath, name), root)))
    return stems, skipped


def pair_by_stem(root: str,
                 rgb: str = 'rgb',
                 depth: str = 'depth',
                 label: str = 'label',
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Pairing:
    """Pair the files of the three folders by stem.

    Args:
        root (str): Dataset root.
        rgb (str): RGB folder, relative to root. Defaults to 'rgb'.
        depth (str): Depth folder. Defaults to 'depth'.
        label (str): Label folder. Defaults to 'label'.
        extensions (Sequence[str]): Image extensions.

    Returns:
        Pairing: Complete samples and everything that went wrong (nothing
        is raised for unpaired files or duplicates: see
        :meth:`Pairing.check`).

    Raises:
        FileNotFoundError: ``root`` or one of the folders does not exist.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'dataset root {root} does not exist')
    folders = {'RGB': rgb, 'depth': depth, 'label': label}
    pairing = Pairing(root=root, folders=folders)
    scans = {}
    for kind, folder in folders.items():
        scans[kind], pairing.skipped[kind] = scan_folder(
            root, folder, extensions)
        dups = {s: p for s, p in scans[kind].items() if len(p) > 1}
        if dups:
            pairing.duplicates[kind] = dups
    for kind, stems in scans.items():
        for stem, paths in sorted(stems.items()):
            lacking = [
                k for k in folders if k != kind and stem not in scans[k]
            ]
            if lacking:
                pairing.unpaired.setdefault(kind, []).extend(paths)
                for path in paths:
                    pairing.missing[path] = lacking
    common = set(scans['RGB']) & set(scans['depth']) & set(scans['label'])
    for stem in sorted(common):
        if any(len(scans[k][stem]) > 1 for k in folders):
            continue  # a duplicate: reported, never listed
        sample = Sample(
            stem=stem,
            rgb=scans['RGB'][stem][0],
            label=scans['label'][stem][0],
            depth=scans['depth'][stem][0])
        bad = [
            p for p in (sample.rgb, sample.label, sample.depth)
            if any(c.isspace() for c in p)
        ]
        if bad:
            pairing.bad_names.extend(bad)
            continue
        pairing.samples.append(sample)
    return pairing


def split_by_ratio(samples: Sequence[Sample],
                   val_ratio: float,
                   seed: int = 0) -> Tuple[List[Sample], List[Sample]]:
    """A random train/val split, reproducible for a given seed.

    ``round(val_ratio * N)`` samples (at least 1 when ``val_ratio > 0``
    and N > 1) go to val; the result does not depend on the input order.

    Args:
        samples (Sequence[Sample]): All samples.
        val_ratio (float): Fraction for validation, in [0, 1).
        seed (int): Seed of the shuffle. Defaults to 0.

    Returns:
        tuple[list[Sample], list[Sample]]: train and val, each sorted by
        stem.
    """
    if not 0 <= val_ratio < 1:
        raise ValueError(f'val_ratio must be in [0, 1), got {val_ratio}')
    ordered = sorted(samples, key=lambda s: s.stem)
    num_val = int(round(val_ratio * len(ordered)))
    if val_ratio > 0 and len(ordered) > 1:
        num_val = min(max(num_val, 1), len(ordered) - 1)
    order = list(range(len(ordered)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:num_val])
    train = [s for i, s in enumerate(ordered) if i not in val_idx]
    val = [s for i, s in enumerate(ordered) if i in val_idx]
    return train, val


def _entry_to_stem(entry: str, rgb_folder: str) -> str:
    """``rgb/scene/0001.png``, ``scene/0001.png`` or ``scene/0001``."""
    entry = _rel(osp.normpath(entry))
    prefix = _rel(osp.normpath(rgb_folder)) + '/'
    if rgb_folder and entry.startswith(prefix):
        entry = entry[len(prefix):]
    stem, ext = osp.splitext(entry)
    return stem if ext.lower() in IMAGE_EXTENSIONS else entry


def read_val_list(path: str, rgb_folder: str = 'rgb') -> List[str]:
    """Stems named by a validation list file.

    A line names one sample by its first whitespace-separated column: a
    stem (``0001``), a file name or path in the RGB folder (``0001.png``,
    ``rgb/0001.png``), so a 3-column list file works too. Blank lines and
    lines starting with '#' are ignored.

    Raises:
        FileNotFoundError: The file does not exist.
        ListMakerError: A sample is named twice.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'val list {path} does not exist')
    stems, first_line, dups = [], {}, []
    with open(path, encoding='utf-8-sig') as f:  # a BOM is dropped
        for lineno, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens or tokens[0].startswith('#'):
                continue
            stem = _entry_to_stem(tokens[0], rgb_folder)
            if stem in first_line:
                dups.append(f'line {lineno}: {tokens[0]!r} (sample {stem!r} '
                            f'already on line {first_line[stem]})')
                continue
            first_line[stem] = lineno
            stems.append(stem)
    if dups:
        raise ListMakerError(f'val list {path} names samples twice:\n  ' +
                             '\n  '.join(dups))
    return stems


def split_by_val_list(
        samples: Sequence[Sample],
        val_stems: Iterable[str]) -> Tuple[List[Sample], List[Sample]]:
    """Split into train and the samples named by ``val_stems``.

    Raises:
        ListMakerError: A named sample is not among the complete samples.
    """
    by_stem = {s.stem: s for s in samples}
    val_stems = list(val_stems)
    unknown = [s for s in val_stems if s not in by_stem]
    if unknown:
        raise ListMakerError(
            f'{len(unknown)} sample(s) of the val list are not complete '
            'RGB-D samples (unknown stem, or unpaired): ' +
            ', '.join(repr(s) for s in unknown))
    val_set = set(val_stems)
    ordered = sorted(samples, key=lambda s: s.stem)
    return ([s for s in ordered if s.stem not in val_set],
            [s for s in ordered if s.stem in val_set])


def format_list_line(sample: Sample) -> str:
    """``rgb<TAB>label<TAB>depth`` (the published column order)."""
    return f'{sample.rgb}\t{sample.label}\t{sample.depth}'


def write_list_file(path: str, samples: Sequence[Sample]) -> str:
    """Write a 3-column list file (one sample per line), atomically: to a
    temporary file in its folder, renamed when complete."""
    atomic_write_text(''.join(format_list_line(s) + '\n' for s in samples),
                      path)
    return path


def make_lists(root: str,
               rgb: str = 'rgb',
               depth: str = 'depth',
               label: str = 'label',
               val_ratio: Optional[float] = 0.1,
               val_list: Optional[str] = None,
               seed: int = 0,
               out_dir: Optional[str] = None,
               allow_unpaired: bool = True,
               overwrite: bool = False) -> Dict[str, object]:
    """Pair, check, split and write ``train.txt`` / ``val.txt``.

    Args:
        root, rgb, depth, label: See :func:`pair_by_stem`.
        val_ratio (float, optional): See :func:`split_by_ratio`; ignored
            when ``val_list`` is given. 0 writes train.txt only.
        val_list (str, optional): See :func:`read_val_list`.
        seed (int): Seed of the random split.
        out_dir (str, optional): Where the lists go. Defaults to root.
        allow_unpaired (bool): Write the complete samples even if some
            files are unpaired (they are reported). Defaults to True.
        overwrite (bool): Replace existing list files. Defaults to False.

    Returns:
        dict: ``pairing`` (:class:`Pairing`), ``train`` and ``val``
        (lists of :class:`Sample`) and ``written`` (paths).

    Raises:
        ListMakerError: duplicates, unusable names, an empty result,
            a bad val list, or (without ``overwrite``) existing lists.
    """
    pairing = pair_by_stem(root, rgb=rgb, depth=depth, label=label)
    pairing.check(allow_unpaired=allow_unpaired)
    if val_list is not None:
        train, val = split_by_val_list(pairing.samples,
                                       read_val_list(val_list, rgb))
    else:
        train, val = split_by_ratio(pairing.samples, val_ratio or 0., seed)
    if not train:
        raise ListMakerError('the split leaves no training sample')
    out_dir = root if out_dir is None else out_dir
    targets = [('train', osp.join(out_dir, 'train.txt'), train)]
    if val:
        targets.append(('val', osp.join(out_dir, 'val.txt'), val))
    existing = [p for _, p, _ in targets if osp.exists(p)]
    if existing and not overwrite:
        raise ListMakerError('list file(s) exist, not overwritten (use '
                             'overwrite / --overwrite): ' +
                             ', '.join(existing))
    written = [write_list_file(p, s) for _, p, s in targets]
    return dict(pairing=pairing, train=train, val=val, written=written)

"""CheckpointHook whose saves can be interrupted without losing work.

Built on mmengine's public extension points only:

* a storage backend (:class:`AtomicLocalBackend`, registered with
  :func:`mmengine.fileio.register_backend`) that writes every file to a
  temporary file in the same directory, ``fsync``\\ s it and renames it over
  the target (``os.replace``), and that can defer deletions;
* :class:`mmengine.hooks.CheckpointHook`'s ``backend_args``, with which
  mmengine writes every checkpoint (latest and best) through that backend
  and builds ``self.file_backend``, which it removes old checkpoints with;
* public hook methods (``before_run``, ``before_train``,
  ``after_train_iter``, ``after_train_epoch``, ``after_val_epoch``),
  which call mmengine's and then carry out the deferred deletions, and
  ``before_save_checkpoint``, which refuses non-finite weights.

mmengine writes ``work_dir/last_checkpoint`` itself, in place, after the
checkpoint file (there is no public way to change that); a kill during that
tiny write can leave it empty. ``before_run`` of an auto-resumed run
repairs such a file (see :meth:`AtomicCheckpointHook.before_run`).

The hook relies on how mmengine's ``CheckpointHook`` orders these steps, so
it refuses to run on an mmengine version it was not checked with (see
:func:`check_mmengine_version`).
"""
import os
import os.path as osp
import re
from typing import List, Optional, Tuple, Union

import mmengine
import torch
from mmengine.dist import barrier, is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.utils import digit_version
from mmseg.registry import HOOKS

from ...utils.atomic_io import atomic_write_bytes, remove_temp_files
from ...utils.checkpoint import register_safe_globals
from .non_finite_loss_hook import (NonFiniteWeightsError, find_non_finite,
                                   last_checkpoint)

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'ATOMIC_BACKEND',
    'MMENGINE_VERSIONS', 'check_mmengine_version'
]

#: Name under which :class:`AtomicLocalBackend` is registered.
ATOMIC_BACKEND = 'geminifusion_atomic_local'
#: mmengine versions ``[min, max)`` whose CheckpointHook this hook was
#: checked against.
MMENGINE_VERSIONS: Tuple[str, str] = ('0.10.0', '0.11.0')


def check_mmengine_version(version: Optional[str] = None) -> None:
    """Fail loudly on an mmengine version the hook was not checked with.

    Args:
        version (str, optional): The version to check. Defaults to the
            installed ``mmengine.__version__``.

    Raises:
        RuntimeError: If ``version`` is outside :data:`MMENGINE_VERSIONS`;
            the message names the version and what to check.
    """
    version = mmengine.__version__ if version is None else version
    low, high = MMENGINE_VERSIONS
    if digit_version(low) <= digit_version(version) < digit_version(high):
        return
    raise RuntimeError(
        f'AtomicCheckpointHook was written for mmengine >={low},<{high}, '
        f'but mmengine {version} is installed. It relies on mmengine\'s '
        'CheckpointHook (mmengine/hooks/checkpoint_hook.py) (1) saving every '
        'checkpoint, latest and best, with runner.save_checkpoint(..., '
        'backend_args=self.backend_args), (2) deleting old checkpoints '
        'only with self.file_backend.remove, built from backend_args in '
        'before_train, and (3) writing work_dir/last_checkpoint after the '
        'checkpoint file. Check these in your mmengine, run '
        'tests/test_training_tools.py and tests/test_compat.py, then widen '
        'MMENGINE_VERSIONS in geminifusion_mmseg/engine/hooks/'
        "atomic_checkpoint_hook.py; or use type='CheckpointHook' in the "
        "config's default_hooks.checkpoint (saves are then not crash-safe).")


@register_backend(ATOMIC_BACKEND, force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's :class:`LocalBackend` with atomic writes.

    ``put``/``put_text`` write through :func:`atomic_write_bytes`: a reader
    (or a resumed run) never sees a half-written file under the target
    name. With ``defer_removal=True``, ``remove`` only records the file
    (with its inode and modification time); :meth:`flush_removals` deletes
    the recorded files that were not rewritten since. Select it with
    ``backend_args=dict(backend='geminifusion_atomic_local')``.

    Args:
        defer_removal (bool): Defer ``remove`` until
            :meth:`flush_removals`. Defaults to False.
    """

    #: Number of completed ``put``/``put_text`` calls in this process (all
    #: instances): lets :class:`AtomicCheckpointHook` check that mmengine
    #: wrote a checkpoint through this backend.
    completed_writes = 0

    def __init__(self, defer_removal: bool = False):
        super().__init__()
        self.defer_removal = defer_removal
        self._pending: List[Tuple[str, Tuple[int, int]]] = []

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write bytes atomically (see :func:`atomic_write_bytes`)."""
        atomic_write_bytes(obj, str(filepath))
        AtomicLocalBackend.completed_writes += 1

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write text atomically (see :func:`atomic_write_bytes`)."""
        self.put(obj.encode(encoding), filepath)

    @staticmethod
    def _signature(path: str) -> Tuple[int, int]:
        st = os.stat(path)
        return st.st_ino, st.st_mtime_ns

    def remove(self, filepath: Union[str, os.PathLike]) -> None:
        """Remove a file now, or (``defer_removal``) at
        :meth:`flush_removals`.

        Raises:
            FileNotFoundError: If ``filepath`` does not exist.
        """
        if not self.defer_removal:
            return super().remove(filepath)
        path = str(filepath)
        self._pending.append((path, self._signature(path)))

    def flush_removals(self) -> List[str]:
        """Delete the files whose removal was deferred.

        A file that was rewritten since its ``remove`` (other inode or
        modification time) or is gone is left alone.

        Returns:
            list[str]: The files deleted.
        """
        removed = []
        pending, self._pending = self._pending, []
        for path, signature in pending:
            try:
                if self._signature(path) == signature:
                    os.remove(path)
                    removed.append(path)
            except FileNotFoundError:
                pass
        return removed


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's :class:`CheckpointHook` with crash-safe saving.

    Stock mmengine writes ``iter_N.pth`` and ``best_*.pth`` in place, and
    deletes the outdated checkpoint (``max_keep_ckpts``) and the previous
    best checkpoint *before* writing the new one; a kill or a full disk at
    the wrong moment leaves a truncated checkpoint under the final name, or
    ``work_dir/last_checkpoint`` naming a deleted file. With this hook, on
    a local disk:

    * every checkpoint (latest and best) is written to a temporary file and
      renamed when complete (:class:`AtomicLocalBackend`), so a file under a
      checkpoint name is always complete;
    * outdated and previous-best checkpoints are deleted only after the new
      checkpoint and ``last_checkpoint`` are written;
    * an empty ``last_checkpoint`` or one that names a missing file (a kill
      while mmengine rewrote it in place) is repaired when the run
      auto-resumes (:meth:`before_run`);
    * temporary files of interrupted saves (``.<name>.<8 characters>.tmp``,
      nothing else) are removed from the checkpoint folder when training
      starts (:meth:`before_train`);
    * a best checkpoint that the resumed checkpoint does not know of (a
      save of the latest checkpoint failed right after a new best, e.g. on
      a full disk) is taken as the best if it is better and not newer than
      the resumed step, so it is replaced by the next best as usual
      (:meth:`before_train`);
    * with ``check_finite`` (default), a checkpoint whose weights hold
      NaN or inf is not written (latest and best alike), and no checkpoint
      is deleted: :class:`NonFiniteWeightsError` names the first bad
      tensor.

    A kill therefore loses at most the work since the last completed
    checkpoint, which ``--resume`` continues from; at worst an outdated
    checkpoint is left on disk. Files are created with mode 0o666 minus
    the umask (0644 under the usual 022), as ``torch.save`` would. Arguments
    are those of :class:`CheckpointHook`, plus ``check_finite`` (bool,
    default True); ``backend_args`` defaults to the atomic backend when
    ``out_dir`` is local. With another storage (``out_dir`` such as
    ``s3://...`` or your own ``backend_args``) mmengine's behaviour is kept
    and a warning is logged. ``file_client_args`` (deprecated in mmengine)
    is refused.

    Raises:
        RuntimeError: On an mmengine version outside
            :data:`MMENGINE_VERSIONS` (see :func:`check_mmengine_version`),
            or if mmengine did not save through the atomic backend.
        ValueError: If ``file_client_args`` is given.
        NonFiniteWeightsError: When a checkpoint with NaN/inf weights
            would be saved (``check_finite``).
    """

    def __init__(self,
                 interval: int = -1,
                 by_epoch: bool = True,
                 out_dir: Optional[str] = None,
                 file_client_args: Optional[dict] = None,
                 backend_args: Optional[dict] = None,
                 check_finite: bool = True,
                 **kwargs) -> None:
        check_mmengine_version()
        self.check_finite = check_finite
        if file_client_args is not None:
            raise ValueError(
                'AtomicCheckpointHook: file_client_args='
                f'{file_client_args!r} is not supported (deprecated in '
                'mmengine and not crash-safe); use backend_args.')
        local = out_dir is None or '://' not in str(out_dir)
        self._atomic = backend_args is None and local
        if self._atomic:
            backend_args = dict(backend=ATOMIC_BACKEND, defer_removal=True)
        super().__init__(
            interval=interval,
            by_epoch=by_epoch,
            out_dir=out_dir,
            backend_args=backend_args,
            **kwargs)

    def _checkpoint_dir(self, runner) -> str:
        """Where the checkpoints go (``out_dir`` as mmengine resolves it)."""
        if self.out_dir is None or self.out_dir == runner.work_dir:
            return runner.work_dir
        return osp.join(self.out_dir,
                        osp.basename(runner.work_dir.rstrip(osp.sep)))

    def _newest_checkpoint(self, directory: str) -> Optional[str]:
        """The checkpoint of ``filename_tmpl`` with the highest step."""
        pattern = re.compile(
            '^' +
            re.escape(self.filename_tmpl).replace(re.escape('{}'), r'(\d+)') +
            '$')
        best: Optional[Tuple[int, str]] = None
        for name in os.listdir(directory) if osp.isdir(directory) else []:
            match = pattern.match(name)
            path = osp.join(directory, name)
            if match and osp.isfile(path):
                step = int(match.group(1))
                if best is None or step > best[0]:
                    best = (step, path)
        return None if best is None else best[1]

    def before_run(self, runner) -> None:
        """Repair a broken ``work_dir/last_checkpoint`` before auto-resume.

        Only when the run resumes from the latest checkpoint (config
        ``resume=True``, no ``load_from``; read from ``runner.cfg``) and
        ``last_checkpoint`` exists but is empty or names a file that does
        not exist: it is rewritten (atomically) to name the checkpoint of
        ``filename_tmpl`` with the highest step in the checkpoint
        directory, and a warning names both.

        Args:
            runner: The runner (``runner.cfg``, ``runner.work_dir``).
        """
        super().before_run(runner)
        cfg = runner.cfg
        if not self._atomic or not cfg.get('resume', False) or cfg.get(
                'load_from', None):
            return
        if is_main_process():
            self._repair_last_checkpoint(runner)
        barrier()  # other processes read last_checkpoint after this

    def _repair_last_checkpoint(self, runner) -> None:
        """Rewrite a broken ``work_dir/last_checkpoint`` (see before_run)."""
        save_file = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(save_file):
            return
        with open(save_file) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            return
        newest = self._newest_checkpoint(self._checkpoint_dir(runner))
        if newest is None:
            return
        atomic_write_bytes(newest.encode('utf-8'), save_file)
        state = 'was empty' if not named else \
            f'named the missing file {named}'
        runner.logger.warning(
            f'{save_file} {state} (a save was interrupted); it now names '
            f'the newest complete checkpoint, {newest}, which is resumed.')

    def before_train(self, runner) -> None:
        """mmengine's set-up, checked; temporary files of interrupted saves
        removed; an unrecorded best checkpoint adopted; deferred deletions
        done."""
        super().before_train(runner)
        if not self._atomic:
            runner.logger.warning(
                'AtomicCheckpointHook: checkpoints go to '
                f'{self.out_dir} with backend_args={self.backend_args}: '
                "saves use mmengine's own (not crash-safe) behaviour.")
            return
        if not isinstance(self.file_backend, AtomicLocalBackend):
            raise RuntimeError(
                'AtomicCheckpointHook: mmengine '
                f'{mmengine.__version__} built CheckpointHook.file_backend '
                f'as {type(self.file_backend).__name__}, not from '
                f'backend_args={self.backend_args}. ' + _CHECK_HINT)
        if is_main_process():
            for path in remove_temp_files(self.out_dir):
                runner.logger.warning(
                    f'removed {path}, the temporary file of an interrupted '
                    'checkpoint save')
            if self.save_best is not None and runner.iter > 0:
                self._adopt_unrecorded_best(runner)
        self._flush(runner)

    def _adopt_unrecorded_best(self, runner) -> None:
        """After a resume, take a best checkpoint on disk that the resumed
        checkpoint does not record as the best, if it is better and from
        no later step than the resumed one (its run failed to save the
        latest checkpoint again after it); the recorded best is then
        outdated and deleted. Other unrecorded best files are left, with a
        warning."""
        by_iter = not self.by_epoch
        step = runner.iter if by_iter else runner.epoch
        for key in self.key_indicators:
            if key not in self.is_better_than:  # 'auto': rule not known yet
                continue
            single = len(self.key_indicators) == 1
            score_key = 'best_score' if single else f'best_score_{key}'
            ckpt_key = 'best_ckpt' if single else f'best_ckpt_{key}'
            recorded = self.best_ckpt_path if single else \
                self.best_ckpt_path_dict.get(key)
            prefix = f'best_{key}_'.replace('/', '_')
            for path, other_step in self._best_files(prefix):
                if recorded and osp.abspath(path) == osp.abspath(recorded):
                    continue
                score = _recorded_score(path, score_key)
                best = runner.message_hub.runtime_info.get(score_key)
                better = score is not None and (
                    best is None or self.is_better_than[key](score, best))
                if other_step > step or not better:
                    runner.logger.warning(
                        f'{path} is a best checkpoint ({key} {_fmt(score)}) '
                        'that the resumed run does not know of (its best: '
                        f'{recorded}, {key} {_fmt(best)}); it is left in '
                        'place.')
                    continue
                runner.message_hub.update_info(score_key, score)
                runner.message_hub.update_info(ckpt_key, path)
                if single:
                    self.best_ckpt_path = path
                else:
                    self.best_ckpt_path_dict[key] = path
                runner.logger.warning(
                    f'{path} ({key} {_fmt(score)}) is the best checkpoint of '
                    'this run, saved before the run stopped; the resumed '
                    f'checkpoint still named {recorded} ({key} '
                    f'{_fmt(best)}). {path} is now the best one.')
                if recorded and osp.isfile(recorded):
                    self.file_backend.remove(recorded)
                recorded = path

    def _best_files(self, prefix: str) -> List[Tuple[str, int]]:
        """(path, step) of the best checkpoints ``<prefix><filename>`` in
        the checkpoint folder, oldest first."""
        pattern = re.compile('^' +
                             re.escape(prefix + self.filename_tmpl).replace(
                                 re.escape('{}'), r'(\d+)') + '$')
        found = []
        for name in os.listdir(self.out_dir):
            match = pattern.match(name)
            if match and osp.isfile(osp.join(self.out_dir, name)):
                found.append((osp.join(self.out_dir,
                                       name), int(match.group(1))))
        return sorted(found, key=lambda f: f[1])

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to save NaN/inf weights (``check_finite``)."""
        if not self.check_finite:
            return
        found = find_non_finite(checkpoint.get('state_dict') or {})
        if found is None:
            return
        key, bad, numel, tensors = found
        meta = checkpoint.get('meta', {})
        latest = last_checkpoint(runner.work_dir)
        raise NonFiniteWeightsError(
            'AtomicCheckpointHook: refusing to save the checkpoint of '
            f"iteration {meta.get('iter')} (epoch {meta.get('epoch')}): "
            f'{key!r} holds {bad} NaN/inf value(s) of {numel}' +
            (f' ({tensors - 1} more tensor(s) too)' if tensors > 1 else '') +
            '. Nothing is written and no checkpoint is deleted; ' +
            (f'the latest complete checkpoint stays {latest}. '
             if latest else 'no checkpoint was saved before. ') +
            'The weights became non-finite in training: lower the learning '
            'rate or add clip_grad to optim_wrapper, check the data, and '
            'keep default_hooks.non_finite_loss on (it stops at the first '
            'NaN loss).')

    def _flush(self, runner) -> None:
        if self._atomic and is_main_process():
            for path in self.file_backend.flush_removals():
                runner.logger.info(f'removed the outdated checkpoint {path}')

    def _saved(self) -> tuple:
        """The latest and best checkpoint paths mmengine's hook recorded."""
        return (self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                tuple(
                    sorted(getattr(self, 'best_ckpt_path_dict', {}).items())))

    def _checked_save(self, runner, save) -> None:
        """Run an mmengine save step, check it, then delete what it
        deferred."""
        if not self._atomic:
            return save()
        before, writes = self._saved(), AtomicLocalBackend.completed_writes
        save()
        after = self._saved()
        if (is_main_process() and after != before
                and AtomicLocalBackend.completed_writes == writes):
            raise RuntimeError(
                f'AtomicCheckpointHook: mmengine {mmengine.__version__} '
                f'saved {after} without the atomic backend. ' + _CHECK_HINT)
        self._flush(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """mmengine's (latest checkpoint every ``interval`` iterations)."""
        self._checked_save(
            runner, lambda: super(AtomicCheckpointHook, self).after_train_iter(
                runner, batch_idx, data_batch, outputs))

    def after_train_epoch(self, runner) -> None:
        """mmengine's (latest checkpoint every ``interval`` epochs)."""
        self._checked_save(
            runner, lambda: super(AtomicCheckpointHook, self).
            after_train_epoch(runner))

    def after_val_epoch(self, runner, metrics) -> None:
        """mmengine's (best checkpoint; latest saved again if it changed)."""
        self._checked_save(
            runner, lambda: super(AtomicCheckpointHook, self).after_val_epoch(
                runner, metrics))


_CHECK_HINT = (
    'AtomicCheckpointHook relies on mmengine\'s CheckpointHook saving '
    'with runner.save_checkpoint(..., backend_args=self.backend_args) and '
    'building self.file_backend from backend_args; check '
    'mmengine/hooks/checkpoint_hook.py of your mmengine, or use '
    "type='CheckpointHook' (saves are then not crash-safe).")


def _fmt(score: Optional[float]) -> str:
    return 'unknown' if score is None else f'{score:.4f}'


def _recorded_score(path: str, score_key: str) -> Optional[float]:
    """The best score recorded in a best checkpoint's message hub (read
    weights-only and memory-mapped: the tensors are not loaded), or None
    if it cannot be read."""
    register_safe_globals()
    try:
        ckpt = torch.load(
            path, map_location='cpu', weights_only=True, mmap=True)
        score = ckpt['message_hub']['runtime_info'][score_key]
        return float(score)
    except Exception:  # an unreadable file is left alone
        return None

"""One training run per work dir: a lock file naming the run's process."""
import atexit
import json
import os
import os.path as osp
import socket
import sys
import time
from typing import Optional, Tuple

from mmengine.dist import (broadcast_object_list, get_world_size,
                           is_main_process)
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmseg.registry import HOOKS

from ...utils.atomic_io import create_temp_file

__all__ = ['LOCK_NAME', 'WorkDirBusyError', 'WorkDirLock', 'WorkDirLockHook']

#: The lock file in the work dir.
LOCK_NAME = 'train.lock'


class WorkDirBusyError(RuntimeError):
    """Another training run holds the work dir (the message names its
    process and host)."""


def _process_start(pid: int) -> Optional[int]:
    """The start time of process ``pid`` (clock ticks since boot, from
    ``/proc``), which tells a reused pid from the original; None where
    unknown."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            # the command (field 2) may hold spaces: split after its ')'
            return int(f.read().rsplit(')', 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start: Optional[int]) -> bool:
    """Whether process ``pid`` (started at ``start``, if known) runs on
    this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


class WorkDirLock:
    """The lock file ``<work_dir>/train.lock`` of a training run.

    It holds JSON: ``pid``, ``host``, ``process_start`` (to tell a reused
    pid), ``started`` (local time) and ``command``. It is created with its
    content in one step (a complete temporary file hard-linked to the lock
    name, which fails if the lock exists), so a lock file is never seen
    half-written.

    Args:
        work_dir (str): The work dir (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self.owner = dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            process_start=_process_start(os.getpid()),
            started=time.strftime('%Y-%m-%d %H:%M:%S'),
            command=' '.join(sys.argv)[:500])
        self.held = False

    def read(self) -> Optional[dict]:
        """The lock's content, None if there is no lock file, {} if it
        cannot be read."""
        try:
            with open(self.path) as f:
                info = json.load(f)
            return info if isinstance(info, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def _create(self) -> bool:
        """Create the lock with this process as owner; False if it exists."""
        fd, tmp = create_temp_file(self.path, keep_ext=False)
        try:
            with os.fdopen(fd, 'w') as f:
                json.dump(self.owner, f)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            except OSError:  # no hard links here: exclusive create instead
                try:
                    fd2 = os.open(self.path,
                                  os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except FileExistsError:
                    return False
                with os.fdopen(fd2, 'w') as f:
                    json.dump(self.owner, f)
            return True
        finally:
            os.remove(tmp)

    def _describe(self, info: dict) -> str:
        return (f"process {info.get('pid')} on host {info.get('host')} "
                f"(started {info.get('started')}: {info.get('command')})")

    def _refuse_if_busy(self, info: dict) -> None:
        """Raise :class:`WorkDirBusyError` unless the lock content ``info``
        is stale (its process on this host is gone, or is this one)."""
        if not info:
            raise WorkDirBusyError(
                f'work dir {self.work_dir} is locked by {self.path}, '
                'which cannot be read. If no training run uses this '
                'work dir, delete that file.')
        same_host = info.get('host') == self.owner['host']
        pid = info.get('pid')
        if same_host and pid == os.getpid():  # an earlier run of ours
            return
        if same_host and isinstance(pid, int) and \
                not _alive(pid, info.get('process_start')):
            return
        where = '' if same_host else (
            ' It runs on another host, so this run cannot check '
            'whether it is still alive: if it has ended (e.g. its '
            'node was lost), delete that file.')
        raise WorkDirBusyError(
            f'work dir {self.work_dir} is in use by another '
            f'training run: {self._describe(info)}, see {self.path}.'
            ' Two runs in one work dir would mix their checkpoints '
            'and logs: give this run another --work-dir, or wait '
            'for that one to end (then --resume continues from its '
            f'last checkpoint).{where}')

    def check(self) -> None:
        """Refuse a busy work dir without taking the lock or writing
        anything (``tools/train.py`` calls it before building the Runner,
        which creates the log folder and dumps the config in the work dir).

        Raises:
            WorkDirBusyError: As :meth:`acquire`.
        """
        info = self.read()
        if info is not None:
            self._refuse_if_busy(info)

    def acquire(self) -> Optional[str]:
        """Take the lock.

        Returns:
            str | None: A warning if a stale lock (its process is gone) was
            taken over, else None.

        Raises:
            WorkDirBusyError: Another live process holds it, or a process
                on another host (which cannot be checked from here).
        """
        os.makedirs(self.work_dir, exist_ok=True)
        warning = None
        for _ in range(5):
            if self._create():
                self.held = True
                return warning
            info = self.read()
            if info is None:  # released meanwhile
                continue
            self._refuse_if_busy(info)
            # stale: move it aside (only one process succeeds), then retry
            aside = f'{self.path}.stale.{os.getpid()}'
            try:
                os.rename(self.path, aside)
            except FileNotFoundError:
                continue
            os.remove(aside)
            if info.get('pid') != os.getpid():
                warning = (f'took over the stale lock {self.path} of '
                           f'{self._describe(info)}: that process no longer '
                           'runs (killed or crashed).')
        raise WorkDirBusyError(f'could not take the lock {self.path} '
                               '(other processes keep taking it)')

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if not self.held:
            return
        self.held = False
        info = self.read()
        if info and info.get('pid') == os.getpid() and \
                info.get('host') == self.owner['host']:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass


@HOOKS.register_module()
class WorkDirLockHook(Hook):
    """Refuse a second training run in a work dir that a run is using.

    When training starts (``before_run`` of ``runner.train()``; testing
    and validation runs do not lock, so a checkpoint can be evaluated
    while training goes on) the main process takes ``work_dir/train.lock``
    (:class:`WorkDirLock`); other processes of a multi-process run wait
    for its result and fail with it. A lock held by a live process, or by
    a process on another host, stops the run with
    :class:`WorkDirBusyError` naming the process and host; a lock left by
    a process that is gone (killed) on this host is taken over with a
    warning, so ``--resume`` after a crash just works. The lock is removed
    when the run ends, also on an exception (at interpreter exit).

    On by default in ``configs/_base_/default_runtime.py``
    (``default_hooks.work_dir_lock``); ``default_hooks.work_dir_lock=None``
    switches it off.
    """

    priority = 'HIGHEST'  # before the checkpoint hook touches the work dir

    def __init__(self) -> None:
        self._lock: Optional[WorkDirLock] = None

    def before_run(self, runner) -> None:
        if not isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            return  # runner.test() / runner.val(): no lock
        result: Tuple[Optional[str], Optional[str]] = (None, None)
        if is_main_process():
            self._lock = WorkDirLock(runner.work_dir)
            try:
                result = (self._lock.acquire(), None)
            except WorkDirBusyError as e:
                result = (None, str(e))
            if self._lock.held:
                atexit.register(self._lock.release)
        if get_world_size() > 1:
            shared = [result]
            broadcast_object_list(shared, src=0)
            result = shared[0]
        warning, error = result
        if error is not None:
            raise WorkDirBusyError(error)
        if warning is not None:
            runner.logger.warning(warning)

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.release()

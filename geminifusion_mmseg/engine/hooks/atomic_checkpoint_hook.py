"""CheckpointHook whose saves can be interrupted without losing work."""
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmseg.registry import HOOKS


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's :class:`CheckpointHook` with crash-safe saving.

    mmengine writes ``iter_N.pth`` in place, deletes outdated checkpoints
    (``max_keep_ckpts``) *before* writing the new one, and rewrites
    ``work_dir/last_checkpoint`` in place; a kill at the wrong moment can
    leave ``last_checkpoint`` pointing at a deleted or half-written file.
    Here, on a local disk, each checkpoint is written to ``<name>.tmp`` and
    renamed when complete, ``last_checkpoint`` is replaced atomically, and
    outdated checkpoints are removed only after that. A kill therefore
    loses at most the work since the last completed checkpoint, which
    ``--resume`` continues from. Other storage backends use mmengine's
    behaviour. Arguments are those of :class:`CheckpointHook`.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        if self.file_backend.name != 'LocalBackend':
            return super()._save_checkpoint_with_step(runner, step, meta)
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        tmp_filename = f'{ckpt_filename}.tmp'
        runner.save_checkpoint(
            self.out_dir,
            tmp_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        os.replace(osp.join(self.out_dir, tmp_filename), self.last_ckpt)
        _atomic_write_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old_step in outdated:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old_step))
            if osp.isfile(path):
                os.remove(path)

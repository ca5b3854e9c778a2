"""Loading a checkpoint in a process that imports nothing but torch."""
import os
import os.path as osp
import subprocess
import sys

_TORCH_ONLY_LOAD = """
import sys, torch
ckpt = torch.load(sys.argv[1])  # torch's default: weights_only=True
plugins = [m for m in sys.modules
           if m.split('.')[0] in ('geminifusion_mmseg', 'mmengine', 'mmseg',
                                  'mmcv')]
assert not plugins, plugins
print(ckpt['meta']['iter'], len(ckpt['message_hub']['log_scalars']))
"""


def load_in_torch_only_process(path):
    """``torch.load(path)`` with torch's defaults in a fresh process that
    imports nothing but torch; returns its stdout."""
    run = subprocess.run([sys.executable, '-c', _TORCH_ONLY_LOAD, path],
                         env=dict(os.environ, OMP_NUM_THREADS='1'),
                         cwd=osp.dirname(path),
                         capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout

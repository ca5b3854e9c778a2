"""Running tools/train.py in a subprocess and reading its logs (shared by
the training, compile, run-safety and quickstart tests)."""
import glob
import json
import os
import os.path as osp
import socket
import sys

from .tiny_configs import REPO

#: The environment of a tool subprocess: this checkout first, one thread.
ENV = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')


def train_cmd(cfg, work_dir, *args):
    """The command line of ``tools/train.py cfg --work-dir work_dir``."""
    return [
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir',
        str(work_dir), *args
    ]


def logged(work_dir):
    """{iter: scalars} from every run's vis_data/scalars.json in work_dir."""
    out = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    out[rec['iter']] = rec
                elif 'mIoU' in rec:
                    out.setdefault('val', []).append(rec)
    return out


def free_port():
    """A free local TCP port (for a torchrun rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

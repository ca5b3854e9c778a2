"""Files the tools write: complete or absent, never over their input or a
folder, with the umask's permissions (utils/atomic_io.py and its users:
the converter, the ONNX export, list files, predicted label maps)."""
import os
import os.path as osp
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from geminifusion_mmseg.apis import init_onnx_model
from geminifusion_mmseg.checkpoints import convert_released_checkpoint
from geminifusion_mmseg.datasets.list_maker import Sample, write_list_file
from geminifusion_mmseg.testing.literal_mit import literal_mit
from geminifusion_mmseg.testing.literal_segmenter import (
    LiteralSegmenter, save_released_checkpoint)
from geminifusion_mmseg.utils.atomic_io import (OutputPathError, atomic_output,
                                                atomic_write_bytes,
                                                check_output_path,
                                                is_temp_file_name,
                                                remove_temp_files)
from tests.helpers.tiny_configs import REPO

CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                     'geminifusion2mmseg.py')
ENV = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')

pytestmark = pytest.mark.usefixtures('one_thread')


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_output_replaces_only_when_complete(tmp_path):
    dst = tmp_path / 'out.bin'
    dst.write_bytes(b'previous good file')
    with pytest.raises(RuntimeError, match='writer failed'):
        with atomic_output(str(dst)) as tmp:
            assert osp.dirname(tmp) == str(tmp_path)
            assert tmp.endswith('.bin') and is_temp_file_name(
                osp.basename(tmp))
            with open(tmp, 'wb') as f:
                f.write(b'half')
            raise RuntimeError('writer failed')
    assert dst.read_bytes() == b'previous good file'
    assert os.listdir(tmp_path) == ['out.bin']
    with atomic_output(str(dst)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'new')
    assert dst.read_bytes() == b'new' and os.listdir(tmp_path) == ['out.bin']


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(b'x', str(tmp_path / 'a.pth'))
        with atomic_output(str(tmp_path / 'b.onnx')) as tmp:
            open(tmp, 'wb').close()
        os.umask(0o027)
        atomic_write_bytes(b'x', str(tmp_path / 'c.pth'))
    finally:
        os.umask(old)
    mode = {
        n: os.stat(tmp_path / n).st_mode & 0o777
        for n in os.listdir(tmp_path)
    }
    assert mode == {'a.pth': 0o644, 'b.onnx': 0o644, 'c.pth': 0o640}


def test_folders_and_the_input_are_refused(tmp_path):
    src = tmp_path / 'model.pth'
    src.write_bytes(b'weights')
    (tmp_path / 'link.pth').symlink_to(src)
    with pytest.raises(OutputPathError, match=f'{tmp_path} is a folder'):
        check_output_path(str(tmp_path), str(src))
    with pytest.raises(OutputPathError, match='is a folder'):
        check_output_path(str(tmp_path / 'new') + '/')
    for dst in (src, tmp_path / 'link.pth', tmp_path / '.' / 'model.pth'):
        with pytest.raises(OutputPathError, match='is the input file'):
            check_output_path(str(dst), str(src))
    with pytest.raises(OutputPathError):
        atomic_write_bytes(b'x', str(tmp_path))
    assert src.read_bytes() == b'weights'


def test_remove_temp_files_removes_only_ours(tmp_path):
    ours = [
        '.iter_8.pth.a1b2c3d4.tmp', '.pred.png.0f0f0f0f.tmp.png',
        '.last_checkpoint.k_x9z2qa.tmp'
    ]
    others = [
        'iter_8.pth', 'notes.tmp', '.notes.tmp', '.a.b.tmp',
        '.iter_8.pth.a1b2c3d4.tmp.d'
    ]
    for name in ours + others:
        (tmp_path / name).write_text('x')
    os.makedirs(tmp_path / '.sub.a1b2c3d4.tmp')  # a folder: kept
    removed = remove_temp_files(str(tmp_path))
    assert sorted(osp.basename(p) for p in removed) == sorted(ours)
    assert sorted(os.listdir(tmp_path)) == sorted(others +
                                                  ['.sub.a1b2c3d4.tmp'])


def _released(tmp_path) -> str:
    torch.manual_seed(0)
    enc = literal_mit('mit_b0')
    src = str(tmp_path / 'mit-b0.pth.tar')
    save_released_checkpoint(LiteralSegmenter(enc, enc.embed_dims, 40), src)
    return src


def test_converter_refuses_its_input_and_folders(tmp_path):
    src = _released(tmp_path)
    before = open(src, 'rb').read()
    for dst, msg in ((src, 'is the input file'), (str(tmp_path),
                                                  'is a folder')):
        with pytest.raises(OutputPathError, match=msg):
            convert_released_checkpoint(src, dst)
    assert open(src, 'rb').read() == before
    assert os.listdir(tmp_path) == ['mit-b0.pth.tar']


def test_converter_survives_a_full_disk(tmp_path):
    src = _released(tmp_path)
    dst = tmp_path / 'b0.pth'
    dst.write_bytes(b'the previous conversion')

    def full_disk():  # writes stop after 256 KiB (the file is ~500 KiB)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(
            resource.RLIMIT_FSIZE,
            (2**18, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    run = subprocess.run([sys.executable, CONVERTER, src,
                          str(dst)],
                         capture_output=True,
                         text=True,
                         env=ENV,
                         preexec_fn=full_disk)
    assert run.returncode == 1, run.stderr
    assert f'error: could not write {dst}' in run.stderr
    assert 'Traceback' not in run.stderr
    assert dst.read_bytes() == b'the previous conversion'
    assert sorted(os.listdir(tmp_path)) == ['b0.pth', 'mit-b0.pth.tar']
    convert_released_checkpoint(src, str(dst))
    assert torch.load(dst, weights_only=True)['meta']['num_classes'] == 40


def test_list_files_are_written_atomically(tmp_path):
    sample = Sample('0', 'rgb/0.png', 'label/0.png', 'depth/0.png')
    path = str(tmp_path / 'lists' / 'train.txt')
    write_list_file(path, [sample])
    assert open(path).read() == 'rgb/0.png\tlabel/0.png\tdepth/0.png\n'
    assert os.listdir(tmp_path / 'lists') == ['train.txt']
    with pytest.raises(OutputPathError, match='is a folder'):
        write_list_file(str(tmp_path / 'lists'), [sample])


@pytest.mark.parametrize('content', [b'', b'hello, not a model\n', None])
def test_init_onnx_model_names_a_file_that_is_not_onnx(tmp_path, content):
    path = str(tmp_path / 'model.onnx')
    if content is None:  # a checkpoint given by mistake
        torch.save({'state_dict': {'w': torch.zeros(3)}}, path)
    else:
        open(path, 'wb').write(content)
    with pytest.raises(ValueError) as e:
        init_onnx_model(path)
    assert path in str(e.value)
    assert 'pytorch2onnx.py' in str(e.value)
    assert 'ONNX model' in str(e.value) or 'ONNX graph' in str(e.value)


def test_predicted_label_maps_are_written_atomically(tmp_path):
    from geminifusion_mmseg.evaluation.metrics import MultiBranchIoUMetric
    metric = MultiBranchIoUMetric(output_dir=str(tmp_path), format_only=True)
    metric.dataset_meta = dict(classes=('a', 'b'))
    pred = torch.tensor(np.array([[0, 1], [1, 0]]))[None]
    metric.process(
        {},
        [dict(pred_sem_seg=dict(data=pred), img_path='/data/rgb/000001.jpg')])
    assert os.listdir(tmp_path) == ['000001.png']

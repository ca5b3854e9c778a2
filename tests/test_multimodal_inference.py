"""``inference_model`` with K modalities (``{modality: path or array}``),
and ``init_model`` on a DeLiVER-branch checkpoint file."""
import glob
import os.path as osp

import cv2
import pytest
import torch
from mmengine.config import Config

from geminifusion_mmseg.apis import inference_model, init_model
from geminifusion_mmseg.testing.literal_deliver import \
    LiteralDeLiVERGeminiFusion
from tests.helpers.synthetic_multimodal import make_deliver
from tests.helpers.tiny_configs import REPO

RGBDEL = osp.join(REPO, 'configs', 'geminifusion',
                  'geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py')
MODALITIES = ('rgb', 'depth', 'event', 'lidar')

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def _small_config(tmp_path) -> str:
    """The RGB-D-E-L zoo config at MiT-B0 size, tested at short side 64."""
    cfg = Config.fromfile(RGBDEL)
    cfg.model.backbone.arch = 'b0'
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.in_channels = [32, 64, 160, 256]
    cfg.test_dataloader.dataset.pipeline[2].short_side = 64
    path = str(tmp_path / 'rgbdel_b0.py')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    """One DeLiVER sample's files (event at another resolution)."""
    root = make_deliver(
        str(tmp_path_factory.mktemp('deliver')), splits=('val', ))
    rgb = sorted(
        glob.glob(osp.join(root, 'img', '*', 'val', '*', '*_rgb*.png')))[0]
    paths = {'rgb': rgb}
    for m, folder, tag in (('depth', 'hha', 'depth'),
                           ('event', 'event', 'event'), ('lidar', 'lidar',
                                                         'lidar')):
        paths[m] = rgb.replace('/img/',
                               f'/{folder}/').replace('_rgb', f'_{tag}')
        assert osp.isfile(paths[m]), paths[m]
    return paths


def test_paths_and_arrays_give_the_same_prediction(tmp_path, sample):
    torch.manual_seed(0)
    model = init_model(_small_config(tmp_path), device='cpu')
    by_path = inference_model(model, dict(sample))
    h, w = cv2.imread(sample['rgb']).shape[:2]
    assert by_path.pred_sem_seg.shape == (h, w)
    # the second stream of a K > 2 model is the fused one
    assert 'pred_sem_seg_rgb' in by_path and 'pred_sem_seg_fused' in by_path
    arrays = {
        m: cv2.imread(p, cv2.IMREAD_UNCHANGED)
        for m, p in sample.items()
    }
    for m, a in arrays.items():  # OpenCV gives BGR(A): as stored is RGB(A)
        if a.ndim == 3:
            arrays[m] = cv2.cvtColor(
                a,
                cv2.COLOR_BGRA2RGBA if a.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    by_array = inference_model(model, arrays)
    torch.testing.assert_close(by_array.seg_logits.data,
                               by_path.seg_logits.data)
    # a batch: one result per input, same as one by one
    batch = inference_model(model, [dict(sample), arrays])
    assert len(batch) == 2
    torch.testing.assert_close(batch[0].seg_logits.data,
                               by_path.seg_logits.data)


def test_wrong_modalities_are_named(tmp_path, sample):
    model = init_model(_small_config(tmp_path), device='cpu')
    inputs = dict(sample)
    del inputs['lidar']
    with pytest.raises(
            ValueError,
            match=r"needs exactly \['rgb', 'depth', "
            r"'event', 'lidar'\]"):
        inference_model(model, inputs)
    with pytest.raises(TypeError, match='give depth inside it'):
        inference_model(model, dict(sample), sample['depth'])


def test_rgbd_config_takes_a_dict_too(tmp_path):
    """For an RGB-D config {'rgb', 'depth'} is the (rgb, depth) call (a
    border-cropped RGB image beside a larger depth map, stretched)."""
    from tests.helpers import make_nyudv2_tokenfusion
    root = make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=1, num_test=1)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'quickstart',
                 'geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py'))
    cfg.model.backbone.init_cfg = None
    path = str(tmp_path / 'qs.py')
    cfg.dump(path)
    torch.manual_seed(0)
    model = init_model(
        path,
        device='cpu',
        cfg_options={'test_dataloader.dataset.size_mismatch': 'stretch'})
    rgb = osp.join(root, 'rgb', '000001.png')
    depth = osp.join(root, 'depth', '000001.png')
    torch.testing.assert_close(
        inference_model(model, {
            'rgb': rgb,
            'depth': depth
        }).seg_logits.data,
        inference_model(model, rgb, depth).seg_logits.data)
    with pytest.raises(ValueError, match="keys 'rgb' and 'depth'"):
        inference_model(model, {'rgb': rgb, 'event': depth})


def test_init_model_reads_a_deliver_branch_file(tmp_path, sample):
    """A bare state dict of the DeLiVER code line (as its train_mm.py saves
    it) loads through init_model, converted in memory: same logits as the
    literal implementation of that code line."""
    torch.manual_seed(0)
    literal = LiteralDeLiVERGeminiFusion('mit_b0', 25, 4).eval()
    with torch.no_grad():
        for p in literal.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    path = str(tmp_path / 'geminifusion_b0_deliver_rgbdel.pth')
    torch.save(literal.state_dict(), path)
    model = init_model(_small_config(tmp_path), path, device='cpu')
    x = [torch.randn(1, 3, 64, 96) for _ in MODALITIES]
    with torch.no_grad():
        ref = literal(x)[2]
        ours = model.encode_decode(
            torch.cat(x, dim=1),
            [dict(img_shape=(64, 96), ori_shape=(64, 96))])
    assert (ours - ref).abs().max() / ref.abs().max() < 1e-4
    assert (ours.argmax(1) == ref.argmax(1)).float().mean() == 1


def test_demo_draws_a_k_modality_prediction(tmp_path, sample, monkeypatch):
    import runpy
    import sys
    cfg = _small_config(tmp_path)
    torch.manual_seed(0)
    model = init_model(cfg, device='cpu')
    ckpt = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    out = str(tmp_path / 'out.png')
    args = [
        'image_demo.py', cfg, ckpt, '--out-file', out, '--branch', 'fused',
        '--inputs'
    ] + [f'{m}={p}' for m, p in sample.items()]
    monkeypatch.setattr(sys, 'argv', args)
    runpy.run_path(
        osp.join(REPO, 'demo', 'image_demo.py'), run_name='__main__')
    shown = cv2.imread(out)
    h, w = cv2.imread(sample['rgb']).shape[:2]
    assert shown is not None and shown.shape[0] >= h and shown.shape[1] >= w
    # a missing modality is named
    monkeypatch.setattr(sys, 'argv', args[:-1])  # no lidar
    with pytest.raises(ValueError, match="needs exactly.*'lidar'"):
        runpy.run_path(
            osp.join(REPO, 'demo', 'image_demo.py'), run_name='__main__')

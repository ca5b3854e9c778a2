"""``MultiModalSegInferencer`` (mmengine BaseInferencer for K modalities)
and the errors of mmseg's own inference APIs on our models."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from geminifusion_mmseg.apis import (MultiModalSegInferencer, inference_model,
                                     init_model)
from geminifusion_mmseg.apis.multimodal_inferencer import find_zoo_model
from geminifusion_mmseg.datasets import generate_quickstart_rgbdt_dataset
from geminifusion_mmseg.testing.literal_mit import LiteralMiT
from geminifusion_mmseg.testing.literal_segmenter import (
    LiteralSegmenter, save_released_checkpoint)
from tests.helpers.synthetic_rgbd import make_nyudv2_tokenfusion
from tests.helpers.tiny_configs import REPO, write_tiny_config
from tests.helpers.tiny_models import random_bn_statistics_

BASE = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
RGBDT = ('configs/quickstart/'
         'geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py')
# the zoo's test pipeline made small: the network sees another size
RESIZE_PIPELINE = """
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='ResizeShortSideToMultiple', short_side=32, size_divisor=32),
    dict(type='PackSegInputs')]))
"""
SIZE = (37, 51)
CLASSES = tuple(f'c{i}' for i in range(40))
PALETTE = [[i * 6, 255 - i * 6, (i * 37) % 256] for i in range(40)]

pytestmark = pytest.mark.usefixtures('one_thread')


def _random_checkpoint(config, path, meta=None):
    """A random-weight model of ``config`` saved with torch.save."""
    torch.manual_seed(1)
    model = init_model(config)
    random_bn_statistics_(model)
    torch.save(dict(state_dict=model.state_dict(), meta=meta or {}), path)
    return path


@pytest.fixture(scope='module')
def rgbd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('inferencer')
    data = make_nyudv2_tokenfusion(
        tmp / 'data', num_train=1, num_test=2, size=SIZE)
    config = write_tiny_config(
        str(tmp / 'tiny.py'), BASE, data, extra=RESIZE_PIPELINE)
    ckpt = _random_checkpoint(
        config, str(tmp / 'ckpt.pth'),
        dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE)))
    names = sorted(os.listdir(osp.join(data, 'rgb')))
    return dict(
        tmp=tmp,
        data=data,
        config=config,
        ckpt=ckpt,
        inferencer=MultiModalSegInferencer(config, ckpt, device='cpu'),
        model=init_model(config, ckpt),
        samples=[
            dict(
                rgb=osp.join(data, 'rgb', n), depth=osp.join(data, 'depth', n))
            for n in names
        ])


def test_single_dict_of_paths_equals_inference_model(rgbd):
    sample = rgbd['samples'][0]
    result = rgbd['inferencer'](sample)
    assert set(result) == {'predictions', 'visualization'}
    expected = inference_model(rgbd['model'], sample['rgb'], sample['depth'])
    label = result['predictions']
    assert isinstance(label, np.ndarray) and label.shape == SIZE
    np.testing.assert_array_equal(label, expected.pred_sem_seg.data[0].numpy())
    # arrays as stored (RGB order, 16-bit depth): the same prediction
    arrays = dict(
        rgb=np.ascontiguousarray(cv2.imread(sample['rgb'])[..., ::-1]),
        depth=cv2.imread(sample['depth'], cv2.IMREAD_UNCHANGED))
    np.testing.assert_array_equal(rgbd['inferencer'](arrays)['predictions'],
                                  label)
    # the SegDataSample: inference_model's, logits included
    ds = rgbd['inferencer'](sample, return_datasamples=True)
    torch.testing.assert_close(
        ds.seg_logits.data, expected.seg_logits.data, rtol=0, atol=0)
    assert 'pred_sem_seg_rgb' in ds and 'pred_sem_seg_depth' in ds


def test_list_batch_size_two_equals_one_by_one(rgbd):
    samples = rgbd['samples']
    singles = [rgbd['inferencer'](s, return_datasamples=True) for s in samples]
    batch = rgbd['inferencer'](samples, batch_size=2, return_datasamples=True)
    assert isinstance(batch, list) and len(batch) == len(samples)
    for one, many in zip(singles, batch):
        torch.testing.assert_close(
            many.seg_logits.data, one.seg_logits.data, rtol=1e-4, atol=1e-5)
    result = rgbd['inferencer'](samples, batch_size=2)
    assert isinstance(result['predictions'], list)
    assert len(result['predictions']) == len(samples)
    with pytest.raises(ValueError, match='batch_size'):
        rgbd['inferencer'](samples, batch_size=0)


def test_folder_dict_with_progress_and_out_dir(rgbd, tmp_path, capsys):
    data = rgbd['data']
    folders = dict(rgb=osp.join(data, 'rgb'), depth=osp.join(data, 'depth'))
    out = str(tmp_path / 'out')
    result = rgbd['inferencer'](
        folders, batch_size=1, out_dir=out, return_vis=True, opacity=0.6)
    assert '3/3' in capsys.readouterr().out  # the progress bar
    names = sorted(os.listdir(folders['rgb']))
    assert sorted(os.listdir(osp.join(out, 'pred'))) == names
    assert sorted(os.listdir(osp.join(out, 'vis'))) == names
    assert len(result['predictions']) == len(names)
    for name, label, vis in zip(names, result['predictions'],
                                result['visualization']):
        png = cv2.imread(osp.join(out, 'pred', name), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8
        np.testing.assert_array_equal(png, label)
        expected = inference_model(
            rgbd['model'], osp.join(folders['rgb'], name),
            osp.join(folders['depth'], name)).pred_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(label, expected)
        shown = cv2.imread(osp.join(out, 'vis', name))[..., ::-1]
        np.testing.assert_array_equal(shown, vis)
        assert vis.shape[0] >= SIZE[0] and vis.shape[1] > SIZE[1]
    assert not [
        n for n in os.listdir(osp.join(out, 'pred')) if n.startswith('.')
    ]  # no temporary files left


def test_unpaired_folder_and_bad_inputs_are_clear_errors(rgbd, tmp_path):
    rgb_dir, depth_dir = tmp_path / 'rgb', tmp_path / 'depth'
    rgb_dir.mkdir()
    depth_dir.mkdir()
    img = np.zeros((8, 8, 3), np.uint8)
    for name in ('a', 'b', 'lonely'):
        cv2.imwrite(str(rgb_dir / f'{name}.png'), img)
    for name in ('a', 'b', 'orphan'):
        cv2.imwrite(str(depth_dir / f'{name}.png'), img[..., 0])
    with pytest.raises(ValueError, match='lonely') as e:
        rgbd['inferencer'](dict(rgb=str(rgb_dir), depth=str(depth_dir)))
    assert 'orphan' in str(e.value)
    with pytest.raises(ValueError, match="keys 'rgb' and 'depth'"):
        rgbd['inferencer'](dict(rgb=str(rgb_dir), thermal=str(depth_dir)))
    with pytest.raises(ValueError, match=r"\['rgb'\] are folders"):
        rgbd['inferencer'](
            dict(rgb=str(rgb_dir), depth=rgbd['samples'][0]['depth']))
    with pytest.raises(ValueError, match=r"written as \['a'\]"):
        a = dict(rgb=str(rgb_dir / 'a.png'), depth=str(depth_dir / 'a.png'))
        rgbd['inferencer']([a, a], out_dir=str(tmp_path / 'o'))
    with pytest.raises(TypeError, match='a dict per sample'):
        rgbd['inferencer']('rgb.png')
    with pytest.raises(ValueError, match="branch 'thermal'"):
        rgbd['inferencer'](
            rgbd['samples'][0], return_vis=True, branch='thermal')


def test_k3_modality_config(tmp_path):
    data = generate_quickstart_rgbdt_dataset(
        str(tmp_path / 'data'), num_train=1, num_val=2, size=(48, 64))
    config = write_tiny_config(str(tmp_path / 'rgbdt.py'), RGBDT, data)
    ckpt = _random_checkpoint(config, str(tmp_path / 'rgbdt.pth'))
    inferencer = MultiModalSegInferencer(config, ckpt, device='cpu')
    folders = {m: osp.join(data, m) for m in ('rgb', 'depth', 'thermal')}
    result = inferencer(folders, batch_size=2, out_dir=str(tmp_path / 'o'))
    names = sorted(os.listdir(folders['rgb']))
    assert len(result['predictions']) == len(names) == 3
    model = init_model(config, ckpt)
    for name, label in zip(names, result['predictions']):
        expected = inference_model(model, {
            m: osp.join(f, name)
            for m, f in folders.items()
        })
        np.testing.assert_array_equal(label,
                                      expected.pred_sem_seg.data[0].numpy())
        assert label.shape == (48, 64)
        assert osp.isfile(tmp_path / 'o' / 'vis' / name)
    with pytest.raises(
            ValueError, match=r"needs exactly \['rgb', 'depth', "
            r"'thermal'\]"):
        inferencer(dict(rgb=folders['rgb'], depth=folders['depth']))
    # mmseg's single-image API on the K = 3 model names ours
    from mmseg.apis import inference_model as mmseg_inference_model
    from mmseg.registry import TRANSFORMS
    rgb = osp.join(folders['rgb'], names[0])
    with pytest.raises(ValueError, match='LoadMultiModalImageFromFile') as e:
        mmseg_inference_model(model, rgb)
    assert 'MultiModalSegInferencer' in str(e.value)
    loader = TRANSFORMS.build(
        dict(
            type='LoadMultiModalImageFromFile',
            modalities=['rgb', 'depth', 'thermal']))
    with pytest.raises(KeyError, match='MultiModalSegInferencer'):
        loader(dict(img_path=rgb))


def test_released_checkpoint_and_arrays_out_dir(rgbd, tmp_path):
    """weights= a released GeminiFusion .pth.tar (converted in memory by
    init_model); array inputs are written under running numbers."""
    torch.manual_seed(3)
    enc = LiteralMiT((16, 32, 40, 64), (1, 1, 1, 1), sr_ratios=(4, 2, 1, 1))
    src = str(tmp_path / 'released.pth.tar')
    save_released_checkpoint(
        LiteralSegmenter(enc, enc.embed_dims, 40, 32), src, 299,
        np.float64(0.5))
    inferencer = MultiModalSegInferencer(rgbd['config'], src, device='cpu')
    sample = rgbd['samples'][1]
    expected = inference_model(
        init_model(rgbd['config'], src), sample['rgb'], sample['depth'])
    arrays = dict(
        rgb=np.ascontiguousarray(cv2.imread(sample['rgb'])[..., ::-1]),
        depth=cv2.imread(sample['depth'], cv2.IMREAD_UNCHANGED))
    out = str(tmp_path / 'out')
    result = inferencer([arrays, arrays], out_dir=out)
    for label in result['predictions']:
        np.testing.assert_array_equal(label,
                                      expected.pred_sem_seg.data[0].numpy())
    assert sorted(os.listdir(osp.join(
        out, 'pred'))) == ['00000000.png', '00000001.png']


def test_zoo_names():
    config, weights = find_zoo_model(
        'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640')
    assert config == osp.join(
        REPO, 'configs', 'geminifusion',
        'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py')
    assert weights.endswith('mit-b3.pth.tar')
    with pytest.raises(ValueError, match='closest') as e:
        MultiModalSegInferencer('geminifusion_mit-b3_nyudv2', device='cpu')
    assert 'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640' in str(e.value)


OUR_API = r'geminifusion_mmseg\.apis\.MultiModalSegInferencer'


def test_mmseg_inference_apis_name_ours(rgbd):
    """mmseg's own single-image APIs, called as an mmseg user would."""
    from mmseg.apis import MMSegInferencer
    from mmseg.apis import inference_model as mmseg_inference_model
    from mmseg.apis import init_model as mmseg_init_model
    rgb = rgbd['samples'][0]['rgb']
    for model in (rgbd['model'],
                  mmseg_init_model(rgbd['config'], device='cpu')):
        for img in (rgb, cv2.imread(rgb)):
            with pytest.raises(ValueError, match=OUR_API) as e:
                mmseg_inference_model(model, img)
            assert 'geminifusion_mmseg.apis.inference_model' in str(e.value)
    with pytest.raises(ValueError, match=OUR_API):
        MMSegInferencer(
            model=rgbd['config'], weights=rgbd['ckpt'], device='cpu')
    # our loader, given only mmseg's img_path, names our API too
    from mmseg.registry import TRANSFORMS
    loader = TRANSFORMS.build(dict(type='LoadRGBDImageFromFile'))
    with pytest.raises(KeyError, match=OUR_API):
        loader(dict(img_path=rgb))


def test_mmseg_inferencer_unchanged_on_an_rgb_config(tmp_path):
    """The guard leaves mmseg's APIs alone for an RGB-only config."""
    from mmseg.apis import MMSegInferencer
    from mmseg.apis import inference_model as mmseg_inference_model
    config = str(tmp_path / 'rgb.py')
    with open(config, 'w') as f:
        f.write(f"""_base_ = [{osp.join(REPO, 'configs', 'quickstart',
        'segformer_mit-tiny_rgb-only_1xb4-2k_quickstart-96x128.py')!r}]
test_pipeline = [dict(type='LoadImageFromFile'),
                 dict(type='PackSegInputs')]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
""")
    img = np.random.default_rng(0).integers(0, 255, (32, 48, 3), np.uint8)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, img)
    inferencer = MMSegInferencer(model=config, device='cpu')
    assert inferencer(path)['predictions'].shape == (32, 48)
    result = mmseg_inference_model(inferencer.model, path)
    assert result.pred_sem_seg.shape == (32, 48)

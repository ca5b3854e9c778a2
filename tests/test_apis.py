"""Inference API (``geminifusion_mmseg.apis``) and ``demo/image_demo.py``."""
import logging
import os
import os.path as osp
import subprocess
import sys
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from geminifusion_mmseg.apis import inference_model, init_model
from geminifusion_mmseg.checkpoints import convert_released_checkpoint
from geminifusion_mmseg.datasets import NYUDV2_CLASSES
from geminifusion_mmseg.datasets.transforms import (LoadRGBDImageFromFile,
                                                    LoadRGBDImageFromNDArray)
from geminifusion_mmseg.testing.literal_mit import LiteralMiT
from geminifusion_mmseg.testing.literal_segmenter import (
    LiteralSegmenter, save_released_checkpoint)
from geminifusion_mmseg.visualization import overlay_with_legend
from tests.helpers.synthetic_rgbd import make_nyudv2_tokenfusion
from tests.helpers.tiny_configs import REPO, write_tiny_config
from tests.helpers.tiny_models import random_bn_statistics_

BASE = 'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'
# The zoo's test pipeline (short side 480, multiples of 32) made small: the
# network sees another size than the input.
RESIZE_PIPELINE = """
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='ResizeShortSideToMultiple', short_side=32, size_divisor=32),
    dict(type='PackSegInputs')]))
"""
SIZE = (37, 51)  # odd, not a multiple of anything
CLASSES = tuple(f'c{i}' for i in range(40))
PALETTE = [[i * 6, 255 - i * 6, (i * 37) % 256] for i in range(40)]

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


@contextmanager
def log_records():
    records = []

    class _Handler(logging.Handler):

        def emit(self, record):
            records.append(record)

    logger = MMLogger.get_current_instance()
    handler = _Handler(level=logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def warnings_of(records):
    return [r.getMessage() for r in records if r.levelno == logging.WARNING]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny config (zoo NYUDv2 config with a small resize), a checkpoint
    with class names in its meta, one without, and synthetic pairs."""
    tmp = tmp_path_factory.mktemp('apis')
    data = make_nyudv2_tokenfusion(
        tmp / 'data', num_train=1, num_test=2, size=SIZE)
    config = write_tiny_config(
        str(tmp / 'tiny.py'), BASE, data, extra=RESIZE_PIPELINE)
    torch.manual_seed(1)
    model = init_model(config)
    random_bn_statistics_(model)
    state = model.state_dict()
    ckpt = str(tmp / 'ckpt.pth')
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE)),
            state_dict=state), ckpt)
    bare = str(tmp / 'bare.pth')
    torch.save(dict(state_dict=state, meta=dict()), bare)
    api_model = init_model(config, ckpt)
    names = sorted(os.listdir(osp.join(data, 'rgb')))
    rgbs = [osp.join(data, 'rgb', n) for n in names]
    depths = [osp.join(data, 'depth', n) for n in names]
    return dict(
        tmp=tmp,
        data=data,
        config=config,
        ckpt=ckpt,
        bare=bare,
        state=state,
        model=api_model,
        rgbs=rgbs,
        depths=depths)


def read_rgb(path):
    return np.ascontiguousarray(cv2.imread(path)[..., ::-1])  # BGR -> RGB


def read_depth(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


# ------------------------------------------------------------- init_model
def test_init_model_loads_weights_and_names_classes(setup):
    model = setup['model']
    assert not model.training
    assert model.cfg.filename == setup['config']
    for k, v in setup['state'].items():
        assert torch.equal(model.state_dict()[k], v), k
    # class names from the checkpoint's meta first ...
    assert model.dataset_meta['classes'] == CLASSES
    assert model.dataset_meta['palette'] == PALETTE
    # ... else from the config's test dataset class (NYUDv2Dataset)
    bare = init_model(setup['config'], setup['bare'])
    assert bare.dataset_meta['classes'] == tuple(NYUDV2_CLASSES)
    assert len(bare.dataset_meta['palette']) == 40
    # and a config whose dataset sets its own metainfo
    custom = init_model(
        setup['config'],
        setup['bare'],
        cfg_options=dict(
            test_dataloader=dict(dataset=dict(metainfo=dict(
                classes=CLASSES)))))
    assert custom.dataset_meta['classes'] == CLASSES
    assert len(custom.dataset_meta['palette']) == 40


def test_init_model_refuses_a_checkpoint_of_another_model(setup):
    other = init_model(
        setup['config'],
        cfg_options=dict(model=dict(decode_head=dict(num_classes=7))))
    path = str(setup['tmp'] / 'other.pth')
    torch.save(dict(state_dict=other.state_dict(), meta={}), path)
    with pytest.raises(ValueError, match='shape mismatch.*conv_seg'):
        init_model(setup['config'], path)
    with log_records() as records:
        loose = init_model(setup['config'], path, strict=False)
    assert any('conv_seg' in m for m in warnings_of(records))
    key = 'backbone.layers.0.patch_embed.proj.weight'
    assert torch.equal(loose.state_dict()[key], other.state_dict()[key])


def test_init_model_released_checkpoint(setup):
    """A released-layout .pth.tar, converted with the tool or in memory."""
    torch.manual_seed(3)
    enc = LiteralMiT((16, 32, 40, 64), (1, 1, 1, 1), sr_ratios=(4, 2, 1, 1))
    literal = LiteralSegmenter(enc, enc.embed_dims, 40, 32)
    src = str(setup['tmp'] / 'released.pth.tar')
    dst = str(setup['tmp'] / 'converted.pth')
    save_released_checkpoint(literal, src, 299, np.float64(0.5))
    convert_released_checkpoint(src, dst, allow_custom_arch=True)
    converted = init_model(setup['config'], dst)
    direct = init_model(setup['config'], src)
    assert converted.dataset_meta['classes'] == tuple(NYUDV2_CLASSES)
    sd, sd_direct = converted.state_dict(), direct.state_dict()
    assert sd.keys() == sd_direct.keys()
    assert all(torch.equal(sd[k], sd_direct[k]) for k in sd)
    assert torch.equal(sd['decode_head.conv_seg.weight'],
                       literal.state_dict()['decoder.linear_pred.weight'])


# --------------------------------------------------------- inference_model
def test_paths_and_rgb_order_arrays_agree(setup):
    model = setup['model']
    rgb_path, depth_path = setup['rgbs'][0], setup['depths'][0]
    from_files = inference_model(model, rgb_path, depth_path)
    rgb, depth = read_rgb(rgb_path), read_depth(depth_path)
    assert depth.dtype == np.uint16
    from_arrays = inference_model(model, rgb, depth)
    assert torch.equal(from_files.seg_logits.data, from_arrays.seg_logits.data)
    assert torch.equal(from_files.pred_sem_seg.data,
                       from_arrays.pred_sem_seg.data)
    assert from_files.img_path == rgb_path
    assert from_files.depth_path == depth_path
    # arrays are read as RGB: the BGR array of cv2.imread is another input
    from_bgr = inference_model(model, np.ascontiguousarray(rgb[..., ::-1]),
                               depth)
    assert not torch.allclose(from_files.seg_logits.data,
                              from_bgr.seg_logits.data)
    # (H, W, 1) and float depth arrays are the same depth map
    same = inference_model(model, rgb, depth[..., None].astype(np.float64))
    assert torch.equal(same.seg_logits.data, from_arrays.seg_logits.data)


def test_output_at_input_size_and_branches(setup):
    result = inference_model(setup['model'], setup['rgbs'][0],
                             setup['depths'][0])
    assert isinstance(result, type(result)) and not isinstance(result, list)
    assert tuple(result.seg_logits.shape) == SIZE
    assert result.seg_logits.data.shape == (40, ) + SIZE
    for key in ('pred_sem_seg', 'pred_sem_seg_rgb', 'pred_sem_seg_depth'):
        assert result.get(key).data.shape == (1, ) + SIZE, key
    assert result.img_shape == (32, 64)  # what the network saw
    assert result.ori_shape == SIZE
    assert torch.equal(result.pred_sem_seg.data[0],
                       result.seg_logits.data.argmax(0))


def test_batch_of_pairs_equals_single_calls(setup, monkeypatch):
    model = setup['model']
    rgbs = [read_rgb(p) for p in setup['rgbs']]
    depths = [read_depth(p) for p in setup['depths']]
    # a 30x40 pair (same network input size, 32x64, as the 37x51 ones)
    # and a portrait 50x30 pair (network input 64x32: its own batch)
    rgbs += [rgbs[0][:30, :40], rgbs[1][:50, :30]]
    depths += [depths[0][:30, :40], depths[1][:50, :30]]
    singles = [inference_model(model, r, d) for r, d in zip(rgbs, depths)]
    calls = []
    test_step = model.test_step
    monkeypatch.setattr(
        model, 'test_step',
        lambda data: calls.append(len(data['inputs'])) or test_step(data))
    batch = inference_model(model, rgbs, depths)
    assert isinstance(batch, list) and len(batch) == len(rgbs)
    assert sorted(calls) == [1, 4]
    for one, many, rgb in zip(singles, batch, rgbs):
        assert many.pred_sem_seg.shape == rgb.shape[:2]
        torch.testing.assert_close(
            many.seg_logits.data, one.seg_logits.data, rtol=1e-4, atol=1e-5)
        agree = (many.pred_sem_seg.data == one.pred_sem_seg.data).float()
        assert agree.mean() > 0.999
    # a tuple of paths works too
    assert len(
        inference_model(model, tuple(setup['rgbs'][:2]),
                        tuple(setup['depths'][:2]))) == 2
    assert inference_model(model, [], []) == []


def _model_with_policy(setup, size_mismatch):
    """The API model with another test-dataset size_mismatch."""
    return init_model(
        setup['config'],
        setup['ckpt'],
        cfg_options={'test_dataloader.dataset.size_mismatch': size_mismatch})


def test_depth_of_another_size_follows_the_dataset_policy(setup):
    """The zoo's 'stretch' (the released copy: border-cropped RGB, full
    depth frame): files and arrays give what the test data set gives."""
    model = setup['model']
    assert model.cfg.test_dataloader.dataset.size_mismatch == 'stretch'
    rgb_path, depth_path = setup['rgbs'][1], setup['depths'][1]
    rgb, depth = read_rgb(rgb_path), read_depth(depth_path)
    assert rgb.shape[:2] != depth.shape[:2] == SIZE
    with log_records() as records:
        from_files = inference_model(model, rgb_path, depth_path)
    assert not warnings_of(records)
    from_arrays = inference_model(model, rgb, depth)
    assert torch.equal(from_files.seg_logits.data, from_arrays.seg_logits.data)
    assert from_files.pred_sem_seg.shape == rgb.shape[:2]
    # the test data set's sample of the same files through the model
    init_default_scope('mmseg')
    dataset = DATASETS.build(
        dict(
            model.cfg.test_dataloader.dataset,
            data_root=setup['data'],
            ann_file='test.txt'))
    index = [
        dataset.get_data_info(i)['img_path'] for i in range(len(dataset))
    ].index(rgb_path)
    item = dataset[index]
    item['data_samples'].set_metainfo(dict(ori_shape=rgb.shape[:2]))
    with torch.no_grad():
        expected = model.test_step(
            dict(inputs=[item['inputs']],
                 data_samples=[item['data_samples']]))[0]
    assert torch.equal(from_files.seg_logits.data, expected.seg_logits.data)

    # 'crop': the depth map centre-cropped to the RGB size
    crop = _model_with_policy(setup, 'crop')
    (top, left) = ((SIZE[0] - rgb.shape[0]) // 2,
                   (SIZE[1] - rgb.shape[1]) // 2)
    cropped = depth[top:top + rgb.shape[0], left:left + rgb.shape[1]]
    ours = inference_model(crop, rgb_path, depth_path)
    ref = inference_model(crop, rgb, np.ascontiguousarray(cropped))
    assert torch.equal(ours.seg_logits.data, ref.seg_logits.data)
    assert not torch.equal(ours.seg_logits.data, from_files.seg_logits.data)
    with pytest.raises(ValueError, match=r'smaller than the RGB image'):
        inference_model(crop, rgb, depth[:rgb.shape[0] - 2])


def test_depth_of_other_size_same_aspect_is_resized(setup):
    model = _model_with_policy(setup, 'error')
    rgb = read_rgb(setup['rgbs'][0])[:36, :50]
    depth = read_depth(setup['depths'][0])[:36, :50]
    half = depth[::2, ::2]  # 18x25: aspect 1.389 vs 1.389
    expected = inference_model(model, rgb,
                               half.repeat(2, axis=0).repeat(2, axis=1))
    with log_records() as records:
        result = inference_model(model, rgb, half)
    msgs = warnings_of(records)
    assert len(msgs) == 1
    assert '18x25' in msgs[0] and '36x50' in msgs[0] and 'nearest' in msgs[0]
    assert result.pred_sem_seg.shape == (36, 50)
    # nearest neighbour: the depth map upsampled by repetition
    assert torch.equal(result.seg_logits.data, expected.seg_logits.data)


def test_depth_of_other_aspect_is_an_error(setup):
    model = _model_with_policy(setup, 'error')
    rgb = read_rgb(setup['rgbs'][0])
    depth = read_depth(setup['depths'][0])
    with pytest.raises(ValueError) as err:
        inference_model(model, rgb, depth[:, :40])
    msg = str(err.value)
    assert '37x40' in msg and '37x51' in msg and 'aspect' in msg
    assert 'size_mismatch' in msg
    with pytest.raises(ValueError, match=r'37x51'):
        inference_model(model, setup['rgbs'][0], np.zeros((20, 20), np.uint16))


def test_bad_inputs_are_clear_errors(setup):
    model = setup['model']
    rgb = read_rgb(setup['rgbs'][0])
    depth = read_depth(setup['depths'][0])
    with pytest.raises(TypeError, match='uint8'):
        inference_model(model, rgb.astype(np.float32), depth)
    with pytest.raises(ValueError, match=r'\(H, W, 3\).*grey'):
        inference_model(model, rgb[..., 0], depth)
    with pytest.raises(ValueError, match='alpha'):
        inference_model(model, np.dstack([rgb, rgb[..., :1]]), depth)
    with pytest.raises(ValueError, match=r'\(H, W, 3\) \(e\.g\. HHA\)'):
        inference_model(model, rgb, np.dstack([depth, depth]))
    with pytest.raises(TypeError, match='file path or a numpy array'):
        inference_model(model, torch.from_numpy(rgb), depth)
    with pytest.raises(TypeError, match='both as lists'):
        inference_model(model, [rgb], depth)
    with pytest.raises(ValueError, match='2 RGB inputs but 1 depth'):
        inference_model(model, [rgb, rgb], [depth])
    with pytest.raises(FileNotFoundError, match='nope.png'):
        inference_model(model, 'nope.png', depth)
    with pytest.raises(TypeError, match='init_model'):
        inference_model(torch.nn.Linear(1, 1), rgb, depth)


@pytest.mark.parametrize('kwargs', [
    dict(depth_encoding='raw'),
    dict(depth_encoding='scale', depth_scale=0.01),
    dict(depth_encoding='clip', depth_range=(500, 9000)),
    dict(depth_encoding='hha'),
])
def test_in_memory_loader_encodes_like_the_file_loader(setup, tmp_path,
                                                       kwargs):
    rgb_path = setup['rgbs'][1]
    depth_path = setup['depths'][1]
    if kwargs['depth_encoding'] == 'hha':
        d = read_depth(depth_path).astype(np.int64) // 100
        hha = np.stack([d, 255 - d, (d * 3) % 256], -1).astype(np.uint8)
        depth_path = str(tmp_path / 'hha.png')
        cv2.imwrite(depth_path, hha[..., ::-1])  # stored BGR
        depth = hha  # RGB order
    else:
        depth = read_depth(depth_path)
    # a border-cropped RGB image beside the full depth frame, stretched
    files = LoadRGBDImageFromFile(**kwargs)(
        dict(
            img_path=rgb_path, depth_path=depth_path, size_mismatch='stretch'))
    arrays = LoadRGBDImageFromNDArray(**kwargs)(
        dict(img=read_rgb(rgb_path), depth=depth, size_mismatch='stretch'))
    np.testing.assert_array_equal(files['img'], arrays['img'])
    assert arrays['img'].dtype == np.float32 and 'depth' not in arrays
    assert arrays['ori_shape'] == read_rgb(rgb_path).shape[:2] != SIZE
    np.testing.assert_array_equal(files['unaligned_modalities']['depth'].data,
                                  arrays['unaligned_modalities']['depth'].data)


# ------------------------------------------------------------ legend, demo
def test_overlay_with_legend_lists_only_present_classes():
    rgb = np.full((60, 30, 3), 100, np.uint8)
    label = np.zeros((60, 30), np.int64) + 3
    label[:, :10] = 1
    label[0, 0] = 255  # ignored: not in the legend
    classes = ('a', 'b', 'c', 'd')
    palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 255]]
    out = overlay_with_legend(rgb, label, classes, palette, opacity=1.0)
    assert out.shape[0] == 60 and out.shape[1] > 30 and out.dtype == np.uint8
    legend = out[:, 30:].reshape(-1, 3)
    colours = {tuple(c) for c in legend}
    assert (0, 255, 0) in colours and (255, 0, 255) in colours  # b, d
    assert (255, 0, 0) not in colours and (0, 0, 255) not in colours
    np.testing.assert_array_equal(out[5, 20], [255, 0, 255])  # opacity 1
    # many classes on a small image: the image is padded below
    tall = overlay_with_legend(rgb[:10],
                               np.arange(300).reshape(10, 30) % 4, classes,
                               palette)
    assert tall.shape[0] > 10


def run_demo(*args):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable,
         osp.join(REPO, 'demo', 'image_demo.py'), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120)


def test_demo_single_pair(setup):
    out = str(setup['tmp'] / 'demo' / 'one.png')
    run = run_demo(setup['rgbs'][0], setup['depths'][0], setup['config'],
                   setup['ckpt'], '--out-file', out, '--opacity', '0.6')
    assert run.returncode == 0, run.stderr
    image = cv2.imread(out)
    assert image.shape[0] >= SIZE[0] and image.shape[1] > SIZE[1]
    # the left part is the overlay, at the RGB image's size
    prediction = inference_model(setup['model'], setup['rgbs'][0],
                                 setup['depths'][0]).pred_sem_seg.data[0]
    expected = overlay_with_legend(
        read_rgb(setup['rgbs'][0]), prediction.numpy(), CLASSES, PALETTE, 0.6)
    np.testing.assert_array_equal(image[..., ::-1], expected)


def test_demo_folder_mode(setup):
    data, tmp = setup['data'], setup['tmp']
    # an RGB image without a depth partner is reported and skipped
    extra = osp.join(data, 'rgb', 'lonely.png')
    cv2.imwrite(extra, np.zeros((8, 8, 3), np.uint8))
    out_dir = str(tmp / 'demo_dir')
    try:
        run = run_demo(
            osp.join(data, 'rgb'), osp.join(data, 'depth'), setup['config'],
            setup['ckpt'], '--out-dir', out_dir)
    finally:
        os.remove(extra)
    assert run.returncode == 0, run.stderr
    assert 'without a depth partner' in run.stdout and 'lonely' in \
        run.stdout
    assert '3 RGB-D pair(s)' in run.stdout
    written = sorted(os.listdir(out_dir))
    assert written == sorted(osp.basename(p) for p in setup['rgbs'])
    for name in written:
        assert cv2.imread(osp.join(out_dir, name)).shape[1] > SIZE[1]

"""The RGB-D loaders and datasets are the K-modality ones for
``('rgb', 'depth')``.

``LoadRGBDImageFromFile``, ``LoadRGBDImageFromNDArray`` and
``LoadRGBDAnnotations`` are thin registered subclasses of
``LoadMultiModalImageFromFile`` / ``...FromNDArray`` /
``LoadMultiModalAnnotations``: for the same sample they give the same
results byte for byte (every key, dtype and value; 16-bit, 8-bit, float
and HHA depth; depth of another (odd) size than RGB under 'crop' and
'stretch'), and the configs that name them build and give the outputs of
the same pipeline written with the generic names. ``RGBDDataset`` (and
NYUDv2, SUN RGB-D, the quickstart) is a ``MultiModalSegDataset``, whose
logic it uses rather than the other way round; its samples and messages
are unchanged.
"""
import copy
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmseg.registry import DATASETS, TRANSFORMS

from geminifusion_mmseg.datasets.transforms import (
    LoadMultiModalAnnotations, LoadMultiModalImageFromFile,
    LoadMultiModalImageFromNDArray, LoadRGBDAnnotations, LoadRGBDImageFromFile,
    LoadRGBDImageFromNDArray, ModalityEncoding)
from geminifusion_mmseg.datasets.transforms.size_mismatch import UNALIGNED_KEY
from tests.helpers.synthetic_rgbd import (make_nyudv2_tokenfusion,
                                          make_sunrgbd_dformer)
from tests.helpers.tiny_configs import REPO

#: (LoadRGBDImageFromFile kwargs, the generic loader's depth encoding)
ENCODINGS = [
    (dict(), dict(encoding='raw')),
    (dict(depth_encoding='scale',
          depth_scale=1e-3), dict(encoding='scale', scale=1e-3)),
    (dict(depth_encoding='clip', depth_range=(1000, 11000)),
     dict(encoding='clip', range=(1000, 11000))),
    (dict(depth_encoding='hha'), dict(encoding='hha')),
]


def _generic_kwargs(rgbd_kwargs: dict) -> dict:
    """The LoadMultiModalImageFromFile arguments of an RGB-D loader's."""
    enc = dict(encoding=rgbd_kwargs.get('depth_encoding', 'raw'))
    if 'depth_scale' in rgbd_kwargs:
        enc['scale'] = rgbd_kwargs['depth_scale']
    if 'depth_range' in rgbd_kwargs:
        enc['range'] = rgbd_kwargs['depth_range']
    out = {
        k: v
        for k, v in rgbd_kwargs.items()
        if k not in ('depth_encoding', 'depth_scale', 'depth_range')
    }
    return dict(out, modalities=['rgb', 'depth'], encodings=dict(depth=enc))


def _frozen(value):
    """A comparable form of a results value: arrays as (dtype, shape,
    bytes), so equal means byte-identical."""
    if isinstance(value, np.ndarray):
        return ('ndarray', value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, torch.Tensor):
        return _frozen(value.numpy())
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    if hasattr(value, '__dataclass_fields__'):  # the unaligned entries
        return tuple((k, _frozen(getattr(value, k)))
                     for k in value.__dataclass_fields__)
    return (type(value).__name__, value)


def assert_identical(a: dict, b: dict) -> None:
    assert list(a) == list(b)  # the same keys, in the same order
    for key in a:
        assert _frozen(a[key]) == _frozen(b[key]), key


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """RGB 37x53 (odd); depth maps of every kind at that size and at an
    odd larger one (45x67); label maps."""
    root = tmp_path_factory.mktemp('rgbd')
    rng = np.random.default_rng(0)

    def write(name, arr):
        path = str(root / name)
        assert cv2.imwrite(path, arr)
        return path

    out = dict(
        rgb=write('rgb.png', rng.integers(0, 256, (37, 53, 3), np.uint8)))
    out['rgb_jpg'] = write('rgb.jpg',
                           rng.integers(0, 256, (37, 53, 3), np.uint8))
    for size, tag in (((37, 53), ''), ((45, 67), '_big')):
        out['d16' + tag] = write(f'd16{tag}.png',
                                 rng.integers(0, 20000, size, np.uint16))
        out['d8' + tag] = write(f'd8{tag}.png',
                                rng.integers(0, 256, size, np.uint8))
        grey = rng.integers(0, 256, size + (1, ), np.uint8)
        out['d8x3' + tag] = write(f'd8x3{tag}.png', np.repeat(grey, 3, 2))
        out['hha' + tag] = write(f'hha{tag}.png',
                                 rng.integers(0, 256, size + (3, ), np.uint8))
        depth = rng.uniform(0, 8, size).astype(np.float32)
        depth[:3] = np.nan
        depth[4, :5] = np.inf
        out['float' + tag] = write(f'float{tag}.tiff', depth)
    out['label8'] = write('label8.png', rng.integers(0, 45, (37, 53),
                                                     np.uint8))
    out['label16'] = write('label16.png',
                           rng.integers(0, 45, (37, 53), np.uint16))
    out['label_colour'] = write('label_colour.png',
                                rng.integers(0, 45, (37, 53, 3), np.uint8))
    return out


def _load(cfg: dict, sample: dict):
    """The transform's results, or the error it raises (type, message)."""
    try:
        return TRANSFORMS.build(cfg)(copy.deepcopy(sample))
    except Exception as e:  # compared between the two classes
        return (type(e).__name__, str(e))


def _compare(a, b) -> None:
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
    else:
        assert_identical(a, b)


def test_the_rgbd_classes_are_the_generic_ones():
    assert issubclass(LoadRGBDImageFromFile, LoadMultiModalImageFromFile)
    assert issubclass(LoadRGBDImageFromNDArray, LoadRGBDImageFromFile)
    assert issubclass(LoadRGBDImageFromNDArray, LoadMultiModalImageFromNDArray)
    assert issubclass(LoadRGBDAnnotations, LoadMultiModalAnnotations)
    for cls in (LoadRGBDImageFromFile, LoadRGBDImageFromNDArray,
                LoadRGBDAnnotations):
        assert TRANSFORMS.get(cls.__name__) is cls
        # one implementation: the aliases define no loading of their own
        for method in ('_load_one', '_stack', '_read', '_load_seg_map'):
            assert method not in vars(cls)
    load = LoadRGBDImageFromFile(
        depth_encoding='clip', depth_range=(100, 5000), depth_scale=2)
    assert load.modalities == ('rgb', 'depth')
    # a ModalityEncoding per modality, the depth one from depth_*
    assert load.modality_encoding('depth') == ModalityEncoding(
        'clip', 2.0, (100.0, 5000.0))
    assert load.modality_encoding('rgb') == ModalityEncoding('rgb')
    assert (load.depth_encoding, load.depth_scale,
            load.depth_range) == ('clip', 2.0, (100.0, 5000.0))
    assert isinstance(load.depth_range[0], float)
    assert repr(load) == ("LoadRGBDImageFromFile(depth_encoding='clip', "
                          'depth_range=(100.0, 5000.0), '
                          "imdecode_backend='cv2', backend_args=None)")


@pytest.mark.parametrize('rgbd_kwargs,enc', ENCODINGS)
@pytest.mark.parametrize('depth', ['d16', 'd8', 'd8x3', 'hha', 'float'])
@pytest.mark.parametrize('policy,tag', [(None, ''), ('crop', '_big'),
                                        ('stretch', '_big'),
                                        ('error', '_big')])
def test_file_loader_is_byte_identical_to_the_generic(files, rgbd_kwargs, enc,
                                                      depth, policy, tag):
    sample = dict(img_path=files['rgb'], depth_path=files[depth + tag])
    if policy is not None:
        sample['size_mismatch'] = policy
    generic = _generic_kwargs(rgbd_kwargs)
    assert generic['encodings']['depth'] == enc
    a = _load(dict(type='LoadRGBDImageFromFile', **rgbd_kwargs), sample)
    b = _load(dict(type='LoadMultiModalImageFromFile', **generic), sample)
    if isinstance(a, tuple):  # the same error; the RGB-D one names the file
        assert isinstance(b, tuple) and a[0] == b[0], (a, b)
        assert files[depth + tag] in a[1], a
        return
    _compare(a, b)
    assert a['img'].dtype == np.float32 and a['img'].shape == (37, 53, 6)
    assert (UNALIGNED_KEY in a) == (policy == 'stretch')
    # the generic loader reads the same sample from modality_paths too
    c = _load(
        dict(type='LoadMultiModalImageFromFile', **generic),
        dict(
            modality_paths=dict(
                rgb=sample['img_path'], depth=sample['depth_path']),
            **{
                k: v
                for k, v in sample.items() if k == 'size_mismatch'
            }))
    assert _frozen(c['img']) == _frozen(a['img'])


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('rgb', ['rgb', 'rgb_jpg'])
def test_file_loader_decoders_match_the_generic(files, backend, rgb):
    # RGB through imdecode_backend; the depth PNG (16-bit) decodes the same
    # with either decoder
    sample = dict(img_path=files[rgb], depth_path=files['d16'])
    a = _load(
        dict(type='LoadRGBDImageFromFile', imdecode_backend=backend), sample)
    b = _load(
        dict(
            type='LoadMultiModalImageFromFile',
            imdecode_backend=backend,
            **_generic_kwargs({})), sample)
    _compare(a, b)


@pytest.mark.parametrize('rgbd_kwargs,enc', ENCODINGS)
@pytest.mark.parametrize('depth', ['d16', 'd8x3', 'hha', 'float'])
@pytest.mark.parametrize('policy,tag', [(None, ''), ('crop', '_big'),
                                        ('stretch', '_big')])
def test_array_loader_is_byte_identical_to_the_generic(files, rgbd_kwargs, enc,
                                                       depth, policy, tag):
    rgb = cv2.imread(files['rgb'])[..., ::-1].copy()
    depth_arr = cv2.imread(files[depth + tag], cv2.IMREAD_UNCHANGED)
    if depth_arr.ndim == 3:
        depth_arr = depth_arr[..., ::-1].copy()
    extra = {} if policy is None else dict(size_mismatch=policy)
    a = _load(
        dict(type='LoadRGBDImageFromNDArray', **rgbd_kwargs),
        dict(img=rgb, depth=depth_arr, **extra))
    b = _load(
        dict(
            type='LoadMultiModalImageFromNDArray',
            **_generic_kwargs(rgbd_kwargs)),
        dict(img=rgb, modality_arrays=dict(depth=depth_arr), **extra))
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and a[0] == b[0], (a, b)
        return
    _compare(a, b)
    assert 'depth' not in a and 'modality_arrays' not in b
    # and the file loader's result for the same pair
    f = _load(
        dict(type='LoadRGBDImageFromFile', **rgbd_kwargs),
        dict(img_path=files['rgb'], depth_path=files[depth + tag], **extra))
    assert _frozen(f['img']) == _frozen(a['img'])


@pytest.mark.parametrize('backend', ['pillow', 'cv2'])
@pytest.mark.parametrize('label', ['label8', 'label16', 'label_colour'])
@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(num_classes=40),
    dict(num_classes=10, reduce_zero_label=True)
])
def test_annotations_are_the_generic_ones_with_channel_none(
        files, backend, label, kwargs):
    sample = dict(
        seg_map_path=files[label],
        reduce_zero_label=kwargs.get('reduce_zero_label', False),
        label_map={3: 7},
        seg_fields=[],
        ori_shape=(37, 53),
        num_classes=30)
    a = _load(
        dict(type='LoadRGBDAnnotations', imdecode_backend=backend, **kwargs),
        sample)
    b = _load(
        dict(
            type='LoadMultiModalAnnotations',
            imdecode_backend=backend,
            channel=None,
            **kwargs), sample)
    if label == 'label_colour':  # refused, naming the file
        assert a[0] == 'ValueError' and files[label] in a[1]
        assert b == a
        # the K-modality default (channel 0) reads its red channel
        c = _load(
            dict(type='LoadMultiModalAnnotations', imdecode_backend=backend),
            sample)
        assert c['gt_seg_map'].shape == (37, 53)
        return
    _compare(a, b)
    assert a['gt_seg_map'].dtype == np.uint8


# ---------------------------------------------------------------- configs
#: loader name -> (generic name, argument translation)
_GENERIC = dict(
    LoadRGBDImageFromFile=('LoadMultiModalImageFromFile', _generic_kwargs),
    LoadRGBDAnnotations=('LoadMultiModalAnnotations',
                         lambda kw: dict(kw, channel=None)))


def _generic_pipeline(steps):
    out = []
    for step in steps:
        step = dict(step)
        if step['type'] in _GENERIC:
            name, translate = _GENERIC[step.pop('type')]
            step = dict(translate(step), type=name)
        out.append(step)
    return out


def _seeded(pipeline, sample, seed=0):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return pipeline(copy.deepcopy(sample))


@pytest.mark.parametrize(
    'config,make,ann',
    [('configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py',
      make_nyudv2_tokenfusion, 'test.txt'),
     ('configs/geminifusion/geminifusion_mit-b3_4xb2-300e_sunrgbd-480x480.py',
      make_sunrgbd_dformer, 'test.txt')])
def test_configs_with_the_rgbd_names_build_and_match_the_generic(
        tmp_path, config, make, ann):
    cfg = Config.fromfile(osp.join(REPO, config))
    root = make(tmp_path / 'data', num_train=1, num_test=3)
    for loader in ('train_dataloader', 'test_dataloader'):
        ds_cfg = cfg[loader].dataset
        steps = [dict(s) for s in ds_cfg.pipeline]
        assert steps[0]['type'] == 'LoadRGBDImageFromFile'
        assert steps[1]['type'] == 'LoadRGBDAnnotations'
        ds = DATASETS.build(
            dict(ds_cfg, data_root=root, ann_file=ann, pipeline=[]))
        old = Compose([TRANSFORMS.build(s) for s in steps])
        new = Compose([TRANSFORMS.build(s) for s in _generic_pipeline(steps)])
        assert type(old.transforms[0]) is LoadRGBDImageFromFile
        for i in range(len(ds)):  # odd border-cropped sizes (NYUDv2)
            info = ds.get_data_info(i)
            a, b = _seeded(old, info), _seeded(new, info)
            assert _frozen(a['inputs']) == _frozen(b['inputs'])
            sa, sb = a['data_samples'], b['data_samples']
            assert _frozen(sa.gt_sem_seg.data) == _frozen(sb.gt_sem_seg.data)
            assert sa.metainfo.keys() == sb.metainfo.keys()
            for key in sa.metainfo:
                assert _frozen(sa.metainfo[key]) == _frozen(
                    sb.metainfo[key]), key


# ---------------------------------------------------------------- datasets
def test_rgbd_datasets_are_the_k2_case_of_the_one_base(tmp_path):
    from geminifusion_mmseg.datasets import (DeLiVERDataset, MFNetDataset,
                                             MultiModalFolderDataset,
                                             MultiModalSegDataset,
                                             NYUDv2Dataset,
                                             QuickstartRGBDDataset,
                                             RGBDDataset, SUNRGBDDataset)
    for cls in (RGBDDataset, NYUDv2Dataset, SUNRGBDDataset,
                QuickstartRGBDDataset, DeLiVERDataset, MFNetDataset,
                MultiModalFolderDataset):
        assert issubclass(cls, MultiModalSegDataset)
        assert DATASETS.get(cls.__name__) is cls
    # the shared logic lives in the base, nothing is borrowed back
    for method in ('_isdir', '_exists', '_num_classes', '_make_info',
                   '_missing_files', '_raise_missing'):
        assert method in vars(MultiModalSegDataset)
        assert method not in vars(RGBDDataset)
    root = make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=3, num_test=1)
    ds = NYUDv2Dataset(data_root=root, ann_file='train.txt')
    assert ds.modalities == ('rgb', 'depth')
    info = ds.get_data_info(1)
    # an RGB-D sample keeps its layout: img_path + depth_path
    assert list(info) == [
        'img_path', 'depth_path', 'seg_map_path', 'label_map',
        'reduce_zero_label', 'size_mismatch', 'seg_fields', 'num_classes',
        'sample_idx'
    ]
    assert info['depth_path'] == osp.join(root, 'depth', '000001.png')
    # the same files as a K-modality folder dataset load byte-identically
    folder = MultiModalFolderDataset(
        data_root=root,
        modalities=['rgb', 'depth'],
        data_prefix=dict(seg_map_path='masks'),
        metainfo=ds.metainfo)
    by_rgb = {
        folder.get_data_info(i)['img_path']: folder.get_data_info(i)
        for i in range(len(folder))
    }
    rgbd = Compose([
        TRANSFORMS.build(dict(type='LoadRGBDImageFromFile')),
        TRANSFORMS.build(dict(type='LoadRGBDAnnotations'))
    ])
    generic = Compose([
        TRANSFORMS.build(dict(type='LoadMultiModalImageFromFile')),
        TRANSFORMS.build(dict(type='LoadMultiModalAnnotations'))
    ])
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        for policy in ('crop', 'stretch'):  # border-cropped RGB: odd sizes
            a = rgbd(dict(copy.deepcopy(info), size_mismatch=policy))
            b = generic(
                dict(
                    copy.deepcopy(by_rgb[info['img_path']]),
                    size_mismatch=policy))
            assert (UNALIGNED_KEY in a) == (UNALIGNED_KEY in b) == (
                policy == 'stretch' and i > 0)
            for key in ('img', 'gt_seg_map', 'img_shape', 'modalities',
                        'modality_encodings', UNALIGNED_KEY):
                assert _frozen(a.get(key)) == _frozen(b.get(key)), key


def test_rgbd_missing_files_are_named_as_before(tmp_path):
    from geminifusion_mmseg.datasets import NYUDv2Dataset
    from tests.helpers.synthetic_rgbd import write_list
    root = make_nyudv2_tokenfusion(tmp_path / 'nyu', num_train=2, num_test=1)
    lst = write_list(tmp_path / 'missing.txt', [
        'rgb/000000.png\tmasks/000000.png\tdepth/000000.png',
        'rgb/none.png\tmasks/000001.png\tdepth/none.png'
    ])
    with pytest.raises(FileNotFoundError) as e:
        NYUDv2Dataset(data_root=root, ann_file=lst)
    assert str(e.value) == (
        f'NYUDv2Dataset: line 2 of {lst}: RGB file '
        f'{osp.join(root, "rgb/none.png")} does not exist (1 more listed '
        'files are missing).')

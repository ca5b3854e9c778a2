"""Released GeminiFusion checkpoints: conversion, recognition, refusals.

The oracle is the literal published segmenter (geminifusion_mmseg.testing)
with random weights and random BatchNorm statistics, saved in the released
``.pth.tar`` layout; after conversion our MultiModalEncoderDecoder (built
from a config dict) must give the same three logits.
"""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from geminifusion_mmseg.checkpoints.released import (
    ReleasedCheckpointError, check_converted_state_dict,
    convert_released_checkpoint, convert_released_state_dict,
    detect_released_model, find_matching_configs, model_config_fragment)
from geminifusion_mmseg.testing.literal_mit import literal_mit
from geminifusion_mmseg.testing.literal_segmenter import (
    LiteralSegmenter, released_state_dict, save_released_checkpoint)
from geminifusion_mmseg.testing.literal_swin import (LiteralGeminiFusionSwin,
                                                     LiteralSwinEncoder)
from geminifusion_mmseg.utils.checkpoint import CheckpointLoadError
from tests.helpers.tiny_models import (literal_mit_segmenter,
                                       literal_swin_segmenter, randomize_)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLI = osp.join(ROOT, 'tools', 'model_converters', 'geminifusion2mmseg.py')
SCORE_KEY = 'module.encoder.score_predictor.0.score_nets.0.0.weight'
ENV = dict(os.environ, OMP_NUM_THREADS='1')

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def build_ours(fragment: dict):
    return MODELS.build(build_cfg(fragment))


def build_cfg(fragment: dict) -> dict:
    return dict(
        type='MultiModalEncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor',
            mean=[123.675, 116.28, 103.53, 0, 0, 0],
            std=[58.395, 57.12, 57.375, 255, 255, 255],
            bgr_to_rgb=False,
            pad_val=0,
            seg_pad_val=255),
        backbone=dict(fragment['backbone'], drop_path_rate=0.),
        decode_head=dict(
            fragment['decode_head'],
            norm_cfg=dict(type='BN', requires_grad=True),
            align_corners=False,
            loss_decode=dict(type='CrossEntropyLoss', avg_non_ignore=True)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def save_with_score_predictor(model, path):
    ckpt = dict(
        segmenter=released_state_dict(model),
        epoch_start=300,
        best_val=np.float64(0.5))
    ckpt['segmenter'][SCORE_KEY] = torch.randn(8, 16)
    torch.save(ckpt, path)


def assert_same_logits(ours, ref):
    assert ours.shape == ref.shape
    scale = ref.abs().max()
    err = (ours - ref).abs().max() / scale
    assert err < 1e-4, err.item()
    agree = (ours.argmax(1) == ref.argmax(1)).float().mean()
    assert agree >= 0.9999, agree.item()


@pytest.mark.parametrize('family,size', [('mit', (61, 83)),
                                         ('swin', (100, 124))])
def test_converted_checkpoint_reproduces_the_release(family, size, tmp_path):
    torch.manual_seed(0)
    if family == 'mit':
        literal = randomize_(literal_mit_segmenter(), seed=1)
    else:
        literal = randomize_(literal_swin_segmenter(), seed=2)
    src, dst = str(tmp_path / 'released.pth.tar'), str(tmp_path / 'ours.pth')
    if family == 'mit':
        save_with_score_predictor(literal, src)
    else:
        save_released_checkpoint(literal, src, 17, np.float64(0.25))
    ckpt, info = convert_released_checkpoint(src, dst, allow_custom_arch=True)
    assert info.family == family and info.num_classes == 5
    assert info.channels == 32 and info.name is None
    assert info.dropped_keys == ([SCORE_KEY] if family == 'mit' else [])
    assert ckpt['meta']['dropped_keys'] == info.dropped_keys

    model = build_ours(model_config_fragment(info))
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    model.eval()
    H, W = size
    assert H % 32 and W % 32
    rgb, depth = torch.randn(2, 3, H, W), torch.randn(2, 3, H, W) * 2
    with torch.no_grad():
        ref = literal([rgb, depth])
        ours = model._branch_logits(torch.cat([rgb, depth], dim=1))
        ens = model._forward(torch.cat([rgb, depth], dim=1))
    assert ours[0].shape[-2:] == (-(-H // 4), -(-W // 4))
    for o, r in zip(ours, ref):  # rgb, depth, ens at 1/4 resolution
        assert_same_logits(o, r)
    assert_same_logits(ens, ref[2])
    # alpha was random: not a plain average
    assert not torch.allclose(ref[2], (ref[0] + ref[1]) / 2, atol=1e-3)


def test_cli_converts_mit_b0_and_loads_strictly(tmp_path):
    torch.manual_seed(0)
    enc = literal_mit('mit_b0')
    literal = LiteralSegmenter(enc, enc.embed_dims, 40)
    src, dst = str(tmp_path / 'mit-b0.pth.tar'), str(tmp_path / 'b0.pth')
    save_released_checkpoint(literal, src, 299, np.float64(0.568))
    run = subprocess.run([sys.executable, CLI, src, dst],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         env=ENV)
    assert run.returncode == 0, run.stderr
    assert "arch='b0'" in run.stdout
    assert 'num_classes: 40 (nyudv2)' in run.stdout
    assert 'GeminiFusionMiT' in run.stdout

    ckpt = torch.load(dst, weights_only=True)

    # Only tensors and builtins (no numpy): any weights-only loader reads it.
    def plain(x):
        if isinstance(x, dict):
            return all(isinstance(k, str) and plain(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return all(plain(v) for v in x)
        return x is None or type(x) in (int, float, str, bool, torch.Tensor)

    assert plain(ckpt)
    meta = ckpt['meta']
    assert meta['released_best_val'] == pytest.approx(0.568)
    assert meta['released_epoch_start'] == 299
    assert meta['arch'] == 'b0' and meta['num_classes'] == 40
    assert len(meta['dataset_meta']['classes']) == 40
    model = build_ours(meta['model_config'])
    assert model.backbone.embed_dims == (32, 64, 160, 256)
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    sd = released_state_dict(literal)
    own = model.state_dict()
    assert len(ckpt['state_dict']) == len(sd) == len(own)
    assert torch.equal(own['decode_head.conv_seg.weight'],
                       sd['module.decoder.linear_pred.weight'])
    assert torch.equal(
        own['backbone.layers.1.blocks.1.attn.fusion.cross_attn_1_to_0.'
            'in_proj_weight'],
        sd['module.encoder.block2.1.attn.cross_attn_1_to_0.in_proj_weight'])
    assert torch.equal(own['backbone.layers.2.blocks.0.attn.sr.weight'],
                       sd['module.encoder.block3.0.attn.sr.module.weight'])

    # mmseg's inference API builds it and names the classes from the meta
    from mmengine.config import Config
    from mmseg.apis import init_model
    cfg = Config(dict(model=build_cfg(meta['model_config'])))
    api_model = init_model(cfg, dst, device='cpu')
    assert list(api_model.dataset_meta['classes'][:2]) == ['wall', 'floor']
    assert torch.equal(api_model.state_dict()['alpha'], own['alpha'])


def test_swin_t_is_recognised_from_a_real_sized_key_set():
    body = LiteralGeminiFusionSwin(96, [2, 2, 6, 2], [3, 6, 12, 24], 7)
    literal = LiteralSegmenter(LiteralSwinEncoder(body), body.num_features, 37)
    sd = released_state_dict(literal)
    info = detect_released_model(sd, 'swin-t.pth.tar')
    assert (info.arch, info.name, info.num_classes) == ('tiny', 'swin-t', 37)
    assert info.dataset == 'sunrgbd' and info.window_size == 7
    converted, info = convert_released_state_dict(sd, 'swin-t.pth.tar')
    check_converted_state_dict(converted, info, 'swin-t.pth.tar')
    assert model_config_fragment(info) == dict(
        backbone=dict(type='GeminiFusionSwin', arch='tiny'),
        decode_head=dict(
            type='SegFormerMLPHead',
            in_channels=[96, 192, 384, 768],
            channels=256,
            num_classes=37))


# --- released key sets of the large variants, from shapes only ----------

_MIT_SHARED = re.compile(
    r'(patch_embed\d\.proj|attn\.(?:q|kv|proj|sr)|mlp\.fc[12])\.')
_SWIN_SHARED = re.compile(
    r'(patch_embed\.proj|(?<=\.)norm[12]|mlp\.fc[12]|downsample)\.')


def ours_to_released(key: str, family: str) -> str:
    """Our key -> the released name (inverse of the converter, written
    from docs/model.md and checked against the literal models below)."""
    if key == 'alpha':
        return 'module.alpha'
    if key.startswith('decode_head.'):
        rest = key[len('decode_head.'):].replace('conv_seg.', 'linear_pred.')
        return 'module.decoder.' + rest
    rest = key[len('backbone.'):].replace('fusion.', '')
    if family == 'mit':
        # our stage list -> the release's flat per-stage names
        rest = re.sub(
            r'^layers\.(\d)\.(patch_embed|blocks|norm)\.',
            lambda m: '{}{}.'.format({'blocks': 'block'}.get(
                m.group(2), m.group(2)),
                                     int(m.group(1)) + 1), rest)
        return 'module.encoder.' + _MIT_SHARED.sub(r'\1.module.', rest)
    rest = re.sub(r'\.attn\.', '.attn.module.', rest)
    return 'module.encoder.body.' + _SWIN_SHARED.sub(r'\1.module.', rest)


def meta_released_state_dict(backbone_cfg, in_channels, num_classes=40):
    """A released-layout dict of meta tensors for a model we build."""
    frag = dict(
        backbone=backbone_cfg,
        decode_head=dict(
            type='SegFormerMLPHead',
            in_channels=in_channels,
            channels=256,
            num_classes=num_classes))
    family = 'mit' if 'MiT' in backbone_cfg['type'] else 'swin'
    with torch.device('meta'):
        model = build_ours(frag)
    return {
        ours_to_released(k, family): v
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize('family', ['mit', 'swin'])
def test_inverse_names_match_the_literal_release(family):
    if family == 'mit':
        literal = literal_mit_segmenter()
        frag = dict(
            backbone=dict(
                type='GeminiFusionMiT',
                arch=dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 1))),
            in_channels=[16, 32, 40, 64])
    else:
        literal = literal_swin_segmenter()
        frag = dict(
            backbone=dict(
                type='GeminiFusionSwin',
                arch=dict(
                    embed_dims=32, depths=[2, 2, 2, 2], num_heads=[2, 4, 8,
                                                                   8])),
            in_channels=[32, 64, 128, 256])
    sd = meta_released_state_dict(frag['backbone'], frag['in_channels'])
    real = released_state_dict(literal)
    assert set(sd) == set(real)
    # our channels are 256 (release default); literal here uses 32
    assert all(sd[k].shape == real[k].shape for k in sd if 'decoder' not in k)


@pytest.mark.parametrize('cfg,dims,arch,name', [
    (dict(type='GeminiFusionMiT', arch='b3'), [64, 128, 320, 512
                                               ], 'b3', 'mit-b3'),
    (dict(type='GeminiFusionMiT', arch='b5'), [64, 128, 320, 512
                                               ], 'b5', 'mit-b5'),
    (dict(type='GeminiFusionSwin', arch='small'), [96, 192, 384, 768
                                                   ], 'small', 'swin-s'),
    (dict(type='GeminiFusionSwin', arch='large'), [192, 384, 768, 1536
                                                   ], 'large', 'swin-l'),
    (dict(type='GeminiFusionSwin',
          arch='large-384'), [192, 384, 768, 1536], 'large-384', 'swin-l-384'),
])
def test_large_variants_are_recognised(cfg, dims, arch, name, tmp_path):
    sd = meta_released_state_dict(cfg, dims)
    info = detect_released_model(sd, 'x.pth.tar')
    assert (info.arch, info.name, info.num_classes) == (arch, name, 40)
    assert info.embed_dims == tuple(dims)
    cdir = tmp_path / 'configs'
    cdir.mkdir()
    for f in (f'geminifusion_{name}_8xb2-300e_nyudv2-480x640.py',
              f'geminifusion_{name}_8xb2-300e_sunrgbd-480x480.py',
              'geminifusion_swin-l-384_ft_nyudv2.py'
              if name == 'swin-l' else 'geminifusion_mit-b0_x.py'):
        (cdir / f).write_text('')
    found = [osp.basename(p) for p in find_matching_configs(info, str(cdir))]
    assert found == [
        f'geminifusion_{name}_8xb2-300e_nyudv2-480x640.py',
        f'geminifusion_{name}_8xb2-300e_sunrgbd-480x480.py'
    ]


# --- refusals ----------------------------------------------------------


def test_refuses_a_file_without_segmenter(tmp_path):
    path = str(tmp_path / 'random.pth')
    torch.save({'foo': torch.zeros(2), 'epoch': 3}, path)
    with pytest.raises(
            ReleasedCheckpointError, match=r'random\.pth.*"segmenter".*foo'):
        convert_released_checkpoint(path)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ReleasedCheckpointError, match='found a list'):
        convert_released_checkpoint(path)


def test_refuses_unknown_depth_unless_custom_is_allowed():
    sd = meta_released_state_dict(
        dict(type='GeminiFusionMiT', arch='b0'), [32, 64, 160, 256])
    extra = {
        k.replace('block1.1.', 'block1.2.'): v
        for k, v in sd.items() if k.startswith('module.encoder.block1.1.')
    }
    sd.update(extra)
    with pytest.raises(
            ReleasedCheckpointError,
            match=r'b0\.pth\.tar.*unknown MiT variant.*depths '
            r'\(3, 2, 2, 2\)'):
        detect_released_model(sd, 'b0.pth.tar')
    info = detect_released_model(sd, 'b0.pth.tar', allow_custom_arch=True)
    assert info.arch == dict(
        embed_dims=(32, 64, 160, 256), depths=(3, 2, 2, 2))
    # a gap in the block indices is not a model at all
    del sd['module.encoder.block1.1.norm1.ln_0.weight']
    gap = {k: v for k, v in sd.items() if '.block1.1.' not in k}
    with pytest.raises(ReleasedCheckpointError, match=r'stage 1 has blocks'):
        detect_released_model(gap, 'b0.pth.tar', allow_custom_arch=True)


@pytest.mark.parametrize('bad_key,match', [
    ('module.encoder.block1.0.attn.foo.weight',
     r'unexpected key .module\.encoder\.block1\.0\.attn\.foo\.weight'),
    ('module.neck.lateral.weight',
     r'unexpected key "module\.neck\.lateral\.weight"'),
])
def test_refuses_unexpected_leftover_keys(bad_key, match, tmp_path):
    literal = literal_mit_segmenter()
    path = str(tmp_path / 'bad.pth.tar')
    ckpt = dict(
        segmenter=released_state_dict(literal),
        epoch_start=0,
        best_val=np.float64(0))
    ckpt['segmenter'][bad_key] = torch.zeros(3)
    torch.save(ckpt, path)
    with pytest.raises(ReleasedCheckpointError, match=r'bad\.pth\.tar'):
        convert_released_checkpoint(path, allow_custom_arch=True)
    with pytest.raises(ReleasedCheckpointError, match=match):
        convert_released_checkpoint(path, allow_custom_arch=True)


def test_refuses_a_wrong_shape():
    sd = meta_released_state_dict(
        dict(type='GeminiFusionSwin', arch='tiny'), [96, 192, 384, 768])
    key = 'module.encoder.body.layers.1.blocks.0.k_noise.weight'
    sd[key] = torch.empty(3, 192, device='meta')
    converted, info = convert_released_state_dict(sd, 't.pth.tar')
    with pytest.raises(
            ReleasedCheckpointError,
            match=re.escape(f"'{key}' has shape (3, 192)")):
        check_converted_state_dict(converted, info, 't.pth.tar')


class _Payload:
    """Pickles to a call of os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_refuses_a_pickle_payload_without_running_it(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pth.tar')
    torch.save(
        {
            'segmenter': {
                'module.alpha': torch.ones(2)
            },
            'x': _Payload(str(marker))
        }, path)
    with pytest.raises(CheckpointLoadError, match=r'evil\.pth\.tar'):
        convert_released_checkpoint(path)
    assert not marker.exists()
    # same with a bare pickle (not a torch zip file)
    with open(path, 'wb') as f:
        pickle.dump({'segmenter': _Payload(str(marker))}, f)
    with pytest.raises(CheckpointLoadError, match=r'evil\.pth\.tar'):
        convert_released_checkpoint(path)
    assert not marker.exists()

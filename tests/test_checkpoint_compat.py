"""Checkpoints written by earlier versions of this plugin still load, the
fusion layer is a config choice, and the weights layer's helpers.

``tests/fixtures/backbone_keys_v1.json`` holds the state-dict keys and shapes
of ``GeminiFusionMiT`` and ``GeminiFusionSwin`` as the plugin wrote them
before the backbones got one stage list (MiT: flat ``patch_embed{s}`` /
``block{s}`` / ``norm{s}``; recorded from that code, for the small
architectures below). An old-layout state dict is made by giving the
current model's tensors those recorded names, in order; loading it must
give the same model.
"""
import json
import os.path as osp
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from geminifusion_mmseg.checkpoints import (CheckpointFormatError,
                                            load_pretrained_backbone,
                                            strip_prefix, unwrap_state_dict,
                                            upgrade_state_dict)
from geminifusion_mmseg.models.backbones import (GeminiFusionMiT,
                                                 GeminiFusionSwin)
from geminifusion_mmseg.models.layers import GeminiFusion
from geminifusion_mmseg.models.utils import load_pretrained, pretrained_loading

V1_KEYS = osp.join(osp.dirname(__file__), 'fixtures', 'backbone_keys_v1.json')
MIT_ARCH = dict(embed_dims=(16, 32, 80, 128), depths=(2, 1, 1, 1))
SWIN_ARCH = dict(
    embed_dims=32, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 8], window_size=4)
HEAD = dict(
    type='SegFormerMLPHead',
    in_channels=list(MIT_ARCH['embed_dims']),
    channels=16,
    num_classes=3)

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def recorded_v1_keys(name):
    with open(V1_KEYS) as f:
        return [(k, tuple(shape)) for k, shape in json.load(f)[name]]


def build(name, seed, **kwargs):
    torch.manual_seed(seed)
    if name == 'GeminiFusionMiT':
        model = GeminiFusionMiT(arch=MIT_ARCH, **kwargs)
    else:
        model = GeminiFusionSwin(arch=SWIN_ARCH, **kwargs)
    model.init_weights()
    return model.eval()


def v1_state_dict(model, prefix=''):
    """``model``'s tensors under the recorded version-1 names (and version
    1 in the metadata, as the old code's ``state_dict`` recorded it)."""
    name = type(model).__name__
    current = model.state_dict()
    old = recorded_v1_keys(name)
    assert len(old) == len(current)
    sd = OrderedDict()
    for (old_key, shape), (key, value) in zip(old, current.items()):
        assert tuple(value.shape) == shape, (old_key, key)
        sd[prefix + old_key] = value.clone()
    sd._metadata = OrderedDict({prefix.rstrip('.'): dict(version=1)})
    return sd


def outputs(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 45, 61, generator=g)
    with torch.no_grad():
        return model(x)


def assert_same_outputs(a, b):
    for x, y in zip(outputs(a), outputs(b)):
        assert torch.equal(x, y)


def test_mit_keys_changed_and_swin_keys_did_not():
    mit = build('GeminiFusionMiT', 0)
    old = [k for k, _ in recorded_v1_keys('GeminiFusionMiT')]
    assert 'block1.1.attn.fusion.k_noise.weight' in old
    assert 'layers.0.blocks.1.attn.fusion.k_noise.weight' in mit.state_dict()
    swin = build('GeminiFusionSwin', 0)
    assert [k for k, _ in recorded_v1_keys('GeminiFusionSwin')
            ] == list(swin.state_dict())


@pytest.mark.parametrize('metadata', ['version 1', 'none'])
def test_old_mit_state_dict_loads_with_identical_outputs(metadata):
    ref = build('GeminiFusionMiT', 0)
    sd = v1_state_dict(ref)
    if metadata == 'none':
        sd = OrderedDict(sd)  # a plain dict: no version recorded
    model = build('GeminiFusionMiT', 5)
    assert not torch.equal(model.layers[0].patch_embed.proj.weight,
                           ref.layers[0].patch_embed.proj.weight)
    model.load_state_dict(sd, strict=True)
    assert_same_outputs(model, ref)


def test_current_state_dict_round_trips():
    ref = build('GeminiFusionMiT', 0)
    model = build('GeminiFusionMiT', 5)
    model.load_state_dict(ref.state_dict(), strict=True)
    assert_same_outputs(model, ref)
    assert ref.state_dict()._metadata['']['version'] == 2


def old_segmentor_checkpoint(tmp_path):
    """A whole segmentor checkpoint with an old-layout backbone."""
    torch.manual_seed(0)
    seg = MODELS.build(
        dict(
            type='MultiModalEncoderDecoder',
            backbone=dict(type='GeminiFusionMiT', arch=MIT_ARCH),
            decode_head=HEAD))
    seg.init_weights()
    seg.eval()
    sd = OrderedDict((k, v) for k, v in seg.state_dict().items()
                     if not k.startswith('backbone.'))
    sd.update(v1_state_dict(seg.backbone, prefix='backbone.'))
    metadata = OrderedDict(seg.state_dict()._metadata)
    metadata['backbone'] = dict(version=1)
    sd._metadata = metadata
    path = str(tmp_path / 'old.pth')
    torch.save(dict(meta=dict(), state_dict=sd), path)
    return seg, path


def test_old_segmentor_checkpoint_loads_with_mmengine(tmp_path):
    ref, path = old_segmentor_checkpoint(tmp_path)
    torch.manual_seed(7)
    model = MODELS.build(
        dict(
            type='MultiModalEncoderDecoder',
            backbone=dict(type='GeminiFusionMiT', arch=MIT_ARCH),
            decode_head=HEAD)).eval()
    load_checkpoint(model, path, map_location='cpu', strict=True)
    x = torch.randn(1, 6, 32, 48)
    with torch.no_grad():
        for a, b in zip(ref._branch_logits(x), model._branch_logits(x)):
            assert torch.equal(a, b)


def test_old_checkpoint_as_pretrained_backbone(tmp_path):
    ref, path = old_segmentor_checkpoint(tmp_path)
    model = build('GeminiFusionMiT', 5)
    report = load_pretrained_backbone(model, path)
    assert report['format'] == 'geminifusion'
    assert report['missing'] == [] and report['unexpected'] == []
    assert_same_outputs(model, ref.backbone)


def test_upgrade_state_dict_renames_only_old_backbone_keys(tmp_path):
    ref, path = old_segmentor_checkpoint(tmp_path)
    sd = torch.load(path, weights_only=True)['state_dict']
    new = upgrade_state_dict(ref, sd)
    assert set(new) == set(ref.state_dict())
    assert [k for k in new if not k.startswith('backbone.')
            ] == [k for k in sd if not k.startswith('backbone.')]
    # idempotent on current keys, whatever the metadata says
    assert list(upgrade_state_dict(ref, OrderedDict(new))) == list(new)


# ------------------------------------------------------------ fusion_cfg
@MODELS.register_module(name='_TestAverageFusion', force=True)
class _TestAverageFusion(nn.Module):
    """Each modality's token becomes the mean over modalities (a stand-in
    for another fusion layer in an ablation)."""

    def __init__(self, embed_dims, num_modalities, scale=1.0):
        super().__init__()
        self.num_modalities = num_modalities
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        xs = x.view(self.num_modalities, -1, *x.shape[1:])
        return (xs.mean(0, keepdim=True) * self.scale).expand_as(xs).reshape(
            x.shape)


@pytest.mark.parametrize('name', ['GeminiFusionMiT', 'GeminiFusionSwin'])
def test_fusion_is_a_config_choice(name):
    default = build(name, 0)
    assert sum(isinstance(m, GeminiFusion) for m in default.modules()) == \
        sum(default.depths)
    none = build(name, 0, fusion_cfg=None)
    assert not any('.fusion.' in k for k in none.state_dict())
    assert all(o.isfinite().all() for o in outputs(none))
    other = build(name, 0, fusion_cfg=dict(type='_TestAverageFusion'))
    fusions = [m for m in other.modules() if isinstance(m, _TestAverageFusion)]
    assert len(fusions) == sum(other.depths)
    assert all(o.isfinite().all() for o in outputs(other))
    heads = build(name, 0, fusion_cfg=dict(type='GeminiFusion', num_heads=4))
    assert {
        m.num_heads
        for m in heads.modules() if isinstance(m, GeminiFusion)
    } == {4}


def test_fusion_num_heads_still_accepted():
    model = GeminiFusionMiT(arch=MIT_ARCH, fusion_num_heads=4)
    assert model.fusion_cfg == dict(type='GeminiFusion', num_heads=4)
    with pytest.raises(ValueError, match='fusion_num_heads=4'):
        GeminiFusionMiT(arch=MIT_ARCH, fusion_cfg=None, fusion_num_heads=4)
    with pytest.raises(ValueError, match='fusion_cfg'):
        GeminiFusionMiT(arch=MIT_ARCH, fusion_cfg='GeminiFusion')
    with pytest.raises(ValueError, match='embed_dims=7'):
        GeminiFusionMiT(
            arch=MIT_ARCH, fusion_cfg=dict(type='GeminiFusion', embed_dims=7))


# ------------------------------------------------------------ helpers
def test_strip_prefix_modes():
    sd = OrderedDict([('module.a', torch.zeros(1)),
                      ('module.b.c', torch.ones(1))])
    assert list(strip_prefix(sd)) == ['a', 'b.c']
    mixed = OrderedDict(sd, x=torch.zeros(1))
    assert list(strip_prefix(mixed)) == ['module.a', 'module.b.c', 'x']
    assert list(strip_prefix(mixed, on_mixed='select')) == ['a', 'b.c']
    with pytest.raises(CheckpointFormatError, match=r"f\.pth.*'x'"):
        strip_prefix(mixed, on_mixed='raise', source='f.pth')
    sd._metadata = OrderedDict([('', {
        'version': 1
    }), ('module', {
        'version': 1
    }), ('module.b', {
        'version': 3
    })])
    assert strip_prefix(sd)._metadata == OrderedDict([('', {
        'version': 1
    }), ('b', {
        'version': 3
    })])


def test_unwrap_state_dict():
    ckpt = dict(
        state_dict=OrderedDict([
            ('module.backbone.x', torch.zeros(1)),
            ('module.decode_head.y', torch.zeros(1)),
        ]),
        meta=dict())
    sd, left_out = unwrap_state_dict(ckpt)
    assert list(sd) == ['x'] and left_out == ['decode_head.y']


def test_pretrained_loader_comes_from_the_registry(monkeypatch):
    model = GeminiFusionMiT(arch=MIT_ARCH)
    calls = []
    monkeypatch.setitem(pretrained_loading.PRETRAINED_LOADERS, 'default',
                        lambda backbone, **kw: calls.append(kw) or {})
    load_pretrained(
        model, dict(type='Pretrained', checkpoint='x.pth', prefix='backbone.'))
    assert calls == [dict(checkpoint_path='x.pth', prefix='backbone.')]
    with pytest.raises(
            RuntimeError, match="no pretrained-weight loader "
            "named 'other'"):
        load_pretrained(
            model, dict(type='Pretrained', checkpoint='x'), loader='other')


def test_old_segmentor_checkpoint_loads_with_init_model(tmp_path):
    from geminifusion_mmseg.apis import init_model
    ref, path = old_segmentor_checkpoint(tmp_path)
    config = tmp_path / 'tiny.py'
    config.write_text(
        "custom_imports = dict(imports=['geminifusion_mmseg'], "
        'allow_failed_imports=False)\n'
        f'model = dict(type="MultiModalEncoderDecoder", backbone=dict('
        f'type="GeminiFusionMiT", arch={MIT_ARCH!r}), decode_head={HEAD!r})\n')
    model = init_model(str(config), path, device='cpu', strict=True)
    x = torch.randn(1, 6, 32, 48)
    with torch.no_grad():
        for a, b in zip(ref._branch_logits(x), model._branch_logits(x)):
            assert torch.equal(a, b)

"""ImageNet-pretrained unimodal backbones -> GeminiFusion backbones
(docs/model.md).

The checkpoints are written by mmseg's OWN unimodal ``MixVisionTransformer``
and ``SwinTransformer`` (random weights), in the four layouts (mmseg MiT,
NVlabs MiT, mmpretrain Swin, Microsoft Swin; the last two rebuilt with
mmseg's converters run backwards and checked by running them forwards).
With the same image as both modalities and neutral fusion layers (zero
output projection: the fusion adds 0), our backbone must reproduce the
unimodal backbone's outputs for both modalities: this checks every name,
the norm copies, the q/kv split, the 1x1-conv/linear reshapes and the
patch-merging channel order numerically.
"""
import importlib.util
import logging
import os.path as osp

import mmseg
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmseg.models.backbones import MixVisionTransformer, SwinTransformer
from mmseg.registry import MODELS

# yapf: disable
from geminifusion_mmseg.checkpoints.pretrained import (
    PretrainedFormatError, load_pretrained_backbone)
# yapf: enable
from geminifusion_mmseg.models.backbones import (GeminiFusionMiT,
                                                 GeminiFusionSwin)
from geminifusion_mmseg.models.layers import GeminiFusion, ModalityLayerNorm
from geminifusion_mmseg.utils.checkpoint import CheckpointLoadError

MIT_ARCH = dict(embed_dims=(16, 32, 80, 128), depths=(1, 2, 1, 1))
SWIN_ARCH = dict(embed_dims=32, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 8])
H, W = 61, 83

# tiny tensors: one intra-op thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures('one_thread')


def _mmseg_converter(name):
    """mmseg's own tools/model_converters/<name>.py (shipped in .mim)."""
    path = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'model_converters',
        f'{name}.py')
    if not osp.isfile(path):
        pytest.skip(f'mmseg converter {name} not installed')
    spec = importlib.util.spec_from_file_location(f'_mmseg_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize_(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.add_(
                torch.randn(p.shape, generator=g) *
                (0.05 if p.dim() > 1 else 0.3))
    model.eval()
    return model


def neutral_fusion_(model):
    """Zero the fusion attentions' output projection: y = x + 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, GeminiFusion):
                for attn in m.attentions:
                    attn.out_proj.weight.zero_()
                    attn.out_proj.bias.zero_()
    return model.eval()


def assert_matches_unimodal(ours, ref_model, x):
    with torch.no_grad():
        ref = ref_model(x)
        outs = ours(torch.cat([x, x], dim=1))
    B = x.shape[0]
    assert len(outs) == len(ref) == 4
    for i, (o, r) in enumerate(zip(outs, ref)):
        for m in range(2):  # rgb rows, depth rows
            got = o[m * B:(m + 1) * B]
            assert got.shape == r.shape, (i, got.shape, r.shape)
            err = (got - r).abs().max() / r.abs().max()
            assert err < 1e-5, (i, m, err.item())


# --- MiT ---------------------------------------------------------------


@pytest.fixture(scope='module')
def mmseg_mit():
    torch.manual_seed(0)
    model = MixVisionTransformer(
        embed_dims=16, num_layers=[1, 2, 1, 1], num_heads=[1, 2, 5, 8])
    model.init_weights()
    return randomize_(model, seed=1)


def mmseg_mit_to_nvlabs(sd):
    """The NVlabs layout of an mmseg MiT state dict, written here from
    mmseg's mit2mmseg (checked by running that converter forwards)."""
    out = {}
    for k, v in sd.items():
        parts = k.split('.')
        s, part = int(parts[1]) + 1, parts[2]
        if part == '0':
            out[f'patch_embed{s}.' +
                '.'.join(parts[3:]).replace('projection', 'proj')] = v
        elif part == '2':
            out[f'norm{s}.{parts[-1]}'] = v
        else:
            base, r = f'block{s}.{parts[3]}.', '.'.join(parts[4:])
            if r.startswith('attn.attn.in_proj_'):
                c = v.shape[0] // 3
                out[base + 'attn.q.' + parts[-1].split('_')[-1]] = v[:c]
                out[base + 'attn.kv.' + parts[-1].split('_')[-1]] = v[c:]
            elif r.startswith('attn.attn.out_proj.'):
                out[base + 'attn.proj.' + parts[-1]] = v
            elif r.startswith('ffn.layers.'):
                idx = parts[6]
                name = {
                    '0': 'mlp.fc1.',
                    '1': 'mlp.dwconv.dwconv.',
                    '4': 'mlp.fc2.'
                }[idx]
                out[base + name + parts[-1]] = (
                    v.flatten(1) if idx != '1' and v.dim() == 4 else v)
            else:
                out[base + r] = v
    return out


def test_nvlabs_layout_helper_inverts_mmseg_converter(mmseg_mit):
    convert_mit = _mmseg_converter('mit2mmseg').convert_mit
    sd = mmseg_mit.state_dict()
    nvlabs = mmseg_mit_to_nvlabs(sd)
    assert 'block2.1.attn.kv.weight' in nvlabs
    back = convert_mit(dict(nvlabs, **{'head.weight': torch.zeros(3, 128)}))
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k


@pytest.mark.parametrize('layout', ['mmseg-flat', 'mmseg-wrapped', 'nvlabs'])
def test_mit_layouts_reproduce_the_unimodal_backbone(mmseg_mit, layout,
                                                     tmp_path):
    sd = mmseg_mit.state_dict()
    if layout == 'mmseg-flat':
        ckpt = dict(sd)
    elif layout == 'mmseg-wrapped':
        ckpt = dict(
            meta=dict(epoch=1),
            state_dict={
                **{
                    f'backbone.{k}': v
                    for k, v in sd.items()
                }, 'decode_head.conv_seg.weight': torch.zeros(2, 4, 1, 1)
            })
    else:
        ckpt = mmseg_mit_to_nvlabs(sd)
        ckpt['head.weight'] = torch.zeros(1000, 128)
        ckpt['head.bias'] = torch.zeros(1000)
    path = str(tmp_path / 'mit.pth')
    torch.save(ckpt, path)

    torch.manual_seed(3)
    ours = GeminiFusionMiT(arch=MIT_ARCH, drop_path_rate=0.)
    fusion_before = {
        k: v.clone()
        for k, v in ours.state_dict().items() if '.fusion.' in k
    }
    report = load_pretrained_backbone(ours, path)
    assert report['format'] == ('nvlabs-mit'
                                if layout == 'nvlabs' else 'mmseg-mit')
    assert report['missing'] == [] and report['unexpected'] == []
    assert set(report['fresh']) == set(fusion_before)
    for k, v in ours.state_dict().items():  # fusion keeps its init
        if k in fusion_before:
            assert torch.equal(v, fusion_before[k]), k
    # each unimodal LayerNorm went into both modality norms
    nw = sd['layers.1.1.1.attn.norm.weight']
    assert torch.equal(ours.layers[1].blocks[1].attn.norm.ln_0.weight, nw)
    assert torch.equal(ours.layers[1].blocks[1].attn.norm.ln_1.weight, nw)
    if layout == 'nvlabs':
        assert 'head.weight' in report['ignored']
    neutral_fusion_(ours)
    assert_matches_unimodal(ours, mmseg_mit, torch.randn(2, 3, H, W))


# --- Swin --------------------------------------------------------------


@pytest.fixture(scope='module')
def mmseg_swin():
    torch.manual_seed(0)
    model = SwinTransformer(
        embed_dims=32,
        depths=(2, 2, 2, 2),
        num_heads=(2, 4, 8, 8),
        window_size=7,
        drop_path_rate=0.)
    model.init_weights()
    randomize_(model, seed=2)
    # The Microsoft layout has one final norm (stage 3): make the others
    # identity so that both layouts describe the same network.
    with torch.no_grad():
        for i in range(3):
            getattr(model, f'norm{i}').weight.fill_(1)
            getattr(model, f'norm{i}').bias.zero_()
    model.eval()  # (mmseg's SwinTransformer.train returns None)
    return model


def _unfold_permutation(fn, n):
    """Index p with fn(x)[..., i] == x[..., p[i]] for a channel permutation
    ``fn`` of mmseg's swin2mmseg."""
    return fn(torch.arange(n, dtype=torch.float64)).long()


def mmseg_swin_to_microsoft(sd):
    """Microsoft names for an mmseg Swin state dict; the patch-merging order
    is undone with the inverse of mmseg's own permutation."""
    conv = _mmseg_converter('swin2mmseg').convert_swin
    out = {}
    for k, v in sd.items():
        if k.startswith(('norm0', 'norm1', 'norm2')):
            continue
        if k.startswith('norm3.'):
            out['norm.' + k.split('.')[-1]] = v
            continue
        new = (
            k.replace('patch_embed.projection.', 'patch_embed.proj.').replace(
                'stages.', 'layers.',
                1).replace('attn.w_msa.', 'attn.').replace(
                    'ffn.layers.0.0.',
                    'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.'))
        if k.endswith('downsample.reduction.weight'):
            fwd = conv({
                'layers.0.downsample.reduction.weight':
                torch.arange(v.shape[1], dtype=torch.float64)[None]
            })['stages.0.downsample.reduction.weight'][0].long()
            v = v[:, torch.argsort(fwd)]
        elif '.downsample.norm.' in k:
            fwd = conv({
                'layers.0.downsample.norm.weight':
                torch.arange(v.shape[0], dtype=torch.float64)
            })['stages.0.downsample.norm.weight'].long()
            v = v[torch.argsort(fwd)]
        out[new] = v
    return out, conv


def test_microsoft_layout_helper_inverts_mmseg_converter(mmseg_swin):
    sd = mmseg_swin.state_dict()
    ms, convert_swin = mmseg_swin_to_microsoft(sd)
    assert 'layers.2.downsample.reduction.weight' in ms and 'norm.bias' in ms
    back = convert_swin(dict(ms, **{'head.weight': torch.zeros(5, 256)}))
    back['norm3.weight'] = back.pop('norm.weight')
    back['norm3.bias'] = back.pop('norm.bias')
    want = {
        k: v
        for k, v in sd.items() if not k.startswith(('norm0', 'norm1', 'norm2'))
    }
    assert set(back) == set(want)
    for k in want:
        assert torch.equal(back[k], want[k]), k
    # the reduction really is permuted (so the test has teeth)
    k = 'stages.0.downsample.reduction.weight'
    assert not torch.equal(ms[k.replace('stages', 'layers')], sd[k])


def small_swin(**kwargs):
    torch.manual_seed(4)
    model = GeminiFusionSwin(arch=dict(SWIN_ARCH, **kwargs), drop_path_rate=0.)
    model.init_weights()
    return model


@pytest.mark.parametrize('layout', ['microsoft', 'mmpretrain'])
def test_swin_layouts_reproduce_the_unimodal_backbone(mmseg_swin, layout,
                                                      tmp_path):
    sd = mmseg_swin.state_dict()
    if layout == 'microsoft':
        ms, _ = mmseg_swin_to_microsoft(sd)
        ms['head.weight'] = torch.zeros(1000, 256)
        ms['head.bias'] = torch.zeros(1000)
        ms['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
        ckpt = dict(model=ms)
    else:
        ckpt = dict(
            meta=dict(mmpretrain_version='1.2.0'),
            state_dict={
                **{
                    f'backbone.{k}': v
                    for k, v in sd.items()
                }, 'head.fc.weight': torch.zeros(1000, 256),
                'head.fc.bias': torch.zeros(1000)
            })
    path = str(tmp_path / 'swin.pth')
    torch.save(ckpt, path)

    ours = small_swin()
    report = load_pretrained_backbone(ours, path)
    assert report['format'] == f'{layout}-swin'
    assert report['missing'] == [] and report['unexpected'] == []
    if layout == 'microsoft':
        assert {'head.weight',
                'layers.0.blocks.1.attn_mask'} <= set(report['ignored'])
        # the final norm went to stage 3, both modalities; the other
        # output norms are new (fresh, not "missing")
        assert torch.equal(ours.norm3.ln_1.bias, sd['norm3.bias'])
        assert {'norm0.ln_0.weight', 'norm2.ln_1.bias'} <= set(report['fresh'])
    else:
        assert 'head.fc.weight' in report['ignored']
    assert torch.equal(ours.patch_embed.norm.ln_0.weight,
                       sd['patch_embed.norm.weight'])
    assert torch.equal(ours.patch_embed.norm.ln_1.weight,
                       sd['patch_embed.norm.weight'])
    neutral_fusion_(ours)
    for m in ours.modules():  # mmseg's Swin uses eps 1e-5 everywhere
        if isinstance(m, ModalityLayerNorm):
            m.eps = 1e-5
    assert_matches_unimodal(ours, mmseg_swin, torch.randn(2, 3, H, W))


def test_other_window_size_resizes_the_bias_tables(mmseg_swin, tmp_path):
    ms, _ = mmseg_swin_to_microsoft(mmseg_swin.state_dict())
    path = str(tmp_path / 'swin_w7.pth')
    torch.save(dict(model=ms), path)
    ours = small_swin(window_size=4)
    report = load_pretrained_backbone(ours, path)
    assert len(report['resized']) == 8 and report['missing'] == []
    table = ms['layers.1.blocks.0.attn.relative_position_bias_table']
    want = F.interpolate(
        table.permute(1, 0).reshape(1, 4, 13, 13), size=(7, 7),
        mode='bicubic').reshape(4, 49).permute(1, 0)
    torch.testing.assert_close(
        ours.layers[1].blocks[0].attn.relative_position_bias_table, want)
    # ours stays the window-4 index
    assert ours.layers[0].blocks[0].attn.relative_position_index.shape == (16,
                                                                           16)
    with torch.no_grad():
        assert torch.isfinite(ours(torch.randn(1, 6, 40, 40))[3]).all()


# --- through init_cfg, options, reports and refusals --------------------


def test_init_cfg_pretrained_in_a_segmentor_config(mmseg_mit, mmseg_swin,
                                                   tmp_path):
    mit_path = str(tmp_path / 'mit_b_small.pth')
    torch.save(mmseg_mit_to_nvlabs(mmseg_mit.state_dict()), mit_path)
    model = MODELS.build(
        dict(
            type='MultiModalEncoderDecoder',
            backbone=dict(
                type='GeminiFusionMiT',
                arch=MIT_ARCH,
                init_cfg=dict(type='Pretrained', checkpoint=mit_path)),
            decode_head=dict(
                type='SegFormerMLPHead',
                in_channels=list(MIT_ARCH['embed_dims']),
                channels=16,
                num_classes=3)))
    model.init_weights()
    assert torch.equal(model.backbone.layers[3].norm.ln_1.weight,
                       mmseg_mit.state_dict()['layers.3.2.weight'])
    # mmseg's legacy segmentor-level ``pretrained`` means the same
    legacy = MODELS.build(
        dict(
            type='MultiModalEncoderDecoder',
            pretrained=mit_path,
            backbone=dict(type='GeminiFusionMiT', arch=MIT_ARCH),
            decode_head=dict(
                type='SegFormerMLPHead',
                in_channels=list(MIT_ARCH['embed_dims']),
                channels=16,
                num_classes=3)))
    assert legacy.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=mit_path)

    swin_path = str(tmp_path / 'swin.pth')
    torch.save({'state_dict': mmseg_swin.state_dict()}, swin_path)
    swin = GeminiFusionSwin(
        arch=SWIN_ARCH,
        init_cfg=dict(
            type='Pretrained', checkpoint=swin_path,
            load_modality_norms=False))
    swin.init_weights()
    qkv = 'stages.3.blocks.1.attn.w_msa.qkv.weight'
    assert torch.equal(swin.layers[3].blocks[1].attn.qkv.weight,
                       mmseg_swin.state_dict()[qkv])
    # load_modality_norms=False: per-modality norms stay at ones / zeros
    assert torch.equal(swin.norm2.ln_0.weight, torch.ones(128))
    assert torch.equal(swin.patch_embed.norm.ln_1.bias, torch.zeros(32))
    with pytest.raises(ValueError, match='unknown keys'):
        GeminiFusionSwin(
            arch=SWIN_ARCH,
            init_cfg=dict(
                type='Pretrained', checkpoint=swin_path,
                strict=True)).init_weights()


class _Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelno, record.getMessage()))


def test_missing_and_unexpected_keys_are_reported(mmseg_mit, tmp_path):
    nv = mmseg_mit_to_nvlabs(mmseg_mit.state_dict())
    del nv['block2.1.mlp.fc2.bias']
    nv['block9.0.extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'partial.pth')
    torch.save(nv, path)
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        report = load_pretrained_backbone(GeminiFusionMiT(arch=MIT_ARCH), path)
    finally:
        logger.removeHandler(handler)
    assert report['missing'] == ['block2.1.mlp.fc2.bias']
    assert report['unexpected'] == ['block9.0.extra.weight']
    warnings = [m for lvl, m in handler.messages if lvl == logging.WARNING]
    assert any('missing keys' in m and 'block2.1.mlp.fc2.bias' in m
               for m in warnings)
    assert any('unexpected keys' in m and 'block9.0.extra.weight' in m
               for m in warnings)


def test_refusals(mmseg_mit, mmseg_swin, tmp_path):
    path = str(tmp_path / 'weird.pth')
    torch.save({'foo.bar': torch.zeros(1), 'baz': torch.zeros(2)}, path)
    with pytest.raises(
            PretrainedFormatError,
            match=r"weird\.pth.*not a known .*'foo\.bar'"):
        load_pretrained_backbone(GeminiFusionMiT(arch=MIT_ARCH), path)
    torch.save([1, 2], path)
    with pytest.raises(PretrainedFormatError, match=r'weird\.pth.*list'):
        load_pretrained_backbone(GeminiFusionMiT(arch=MIT_ARCH), path)

    mit_path = str(tmp_path / 'mit.pth')
    torch.save(mmseg_mit.state_dict(), mit_path)
    with pytest.raises(
            PretrainedFormatError,
            match='mmseg-mit checkpoint cannot initialise '
            'GeminiFusionSwin'):
        load_pretrained_backbone(small_swin(), mit_path)
    # another variant: a clear shape error naming the key
    with pytest.raises(
            PretrainedFormatError,
            match=r"'patch_embed1\.proj\.weight' has shape "
            r'\(16, 3, 7, 7\)'):
        load_pretrained_backbone(
            GeminiFusionMiT(
                arch=dict(embed_dims=(32, 64, 160, 256), depths=(1, 1, 1, 1))),
            mit_path)

    class Evil:

        def __reduce__(self):
            return (print, ('payload ran', ))

    torch.save({'state_dict': {'x': Evil()}}, path)
    with pytest.raises(CheckpointLoadError, match=r'weird\.pth'):
        load_pretrained_backbone(GeminiFusionMiT(arch=MIT_ARCH), path)


def test_released_checkpoint_as_backbone_init(tmp_path):
    from geminifusion_mmseg.testing.literal_segmenter import (
        released_state_dict, save_released_checkpoint)
    from tests.helpers.tiny_models import literal_mit_segmenter
    literal = literal_mit_segmenter()
    path = str(tmp_path / 'released.pth.tar')
    save_released_checkpoint(literal, path)
    ours = GeminiFusionMiT(
        arch=dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 1)))
    report = load_pretrained_backbone(ours, path)
    assert report['format'] == 'geminifusion' and report['fresh'] == []
    assert report['missing'] == [] and report['unexpected'] == []
    enc = literal.encoder
    assert torch.equal(ours.layers[1].blocks[1].attn.fusion.k_noise.weight,
                       enc.block2[1].attn.k_noise.weight)
    assert torch.equal(ours.layers[0].patch_embed.proj.weight,
                       enc.patch_embed1.proj.module.weight)
    assert 'decode_head.conv_seg.weight' in report['ignored']
    # the bare ``segmenter`` state dict works too
    torch.save(released_state_dict(literal), path)
    assert load_pretrained_backbone(ours, path)['format'] == 'geminifusion'

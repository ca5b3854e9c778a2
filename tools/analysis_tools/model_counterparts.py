"""The three models the analysis tools compare, built from one config.

Shared by ``benchmark.py`` and ``get_flops.py`` (which import it from the
script's folder):

(a) **fused**: our :class:`MultiModalEncoderDecoder`, built from the
    config's ``model``.
(b) **literal**: the published-style implementation, the same oracle the
    exactness tests use (:mod:`geminifusion_mmseg.testing`:
    :class:`LiteralSegmenter` with
    :class:`LiteralMiT` or :class:`LiteralGeminiFusionSwin` of the same
    architecture: per-sample loop over ``nn.MultiheadAttention`` with a
    2-token key sequence, modalities as separate passes). Our weights are
    copied into it through :func:`literal_key_to_fused` (the released-key
    map of :mod:`geminifusion_mmseg.checkpoints`: the literal keys are the
    released ones), so (a) and (b) compute the same function.
(c) **unimodal**: the same backbone architecture and head on RGB alone:
    mmseg's ``EncoderDecoder`` with mmseg's own ``MixVisionTransformer`` /
    ``SwinTransformer`` (3 input channels) and our ``SegFormerMLPHead``.
"""
import copy
import logging
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from geminifusion_mmseg.checkpoints import released_key_to_ours

KINDS = ('fused', 'literal', 'unimodal')
KIND_LABELS = {
    'fused': '(a) ours, fused',
    'literal': '(b) literal published-style',
    'unimodal': '(c) unimodal RGB-only',
}


# ---------------------------------------------------------------- config
def load_config(path: str, cfg_options: dict = None):
    """Read a config, apply ``--cfg-options``, import its plugins and set
    the mmseg default scope."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    import geminifusion_mmseg  # noqa: F401  (registers the plugin)
    init_default_scope('mmseg')
    return cfg


def _model_cfg(cfg) -> dict:
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('init_cfg', None)
    # Benchmarks run on random weights: never read a pretrained file.
    model_cfg['backbone'].pop('init_cfg', None)
    model_cfg['backbone'].pop('pretrained', None)
    # Inputs are fed already normalised (no data preprocessor pass).
    model_cfg.pop('data_preprocessor', None)
    return model_cfg


def _quiet_init_weights(model: nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter report
    (INFO messages), which would fill the benchmark's output."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def build_fused(cfg, checkpoint: Optional[str] = None) -> nn.Module:
    """(a): the config's model, randomly initialised (``init_weights``),
    no pretrained loading; with ``checkpoint``, its weights (any format
    :func:`geminifusion_mmseg.apis.init_model` reads, strictly)."""
    from mmseg.registry import MODELS
    model = MODELS.build(_model_cfg(cfg))
    _quiet_init_weights(model)
    if not hasattr(model, 'branch_logits'):
        raise ValueError(
            f'the config builds {type(model).__name__}; the benchmark needs a '
            'MultiModalEncoderDecoder (GeminiFusion) model')
    if checkpoint is not None:
        from geminifusion_mmseg.apis import init_model
        model.load_state_dict(init_model(cfg, checkpoint).state_dict())
    return model


def backbone_kind(fused: nn.Module) -> str:
    """'mit' or 'swin'."""
    name = type(fused.backbone).__name__
    if name == 'GeminiFusionMiT':
        return 'mit'
    if name == 'GeminiFusionSwin':
        return 'swin'
    raise ValueError(f'no literal/unimodal counterpart for backbone {name}')


def fusion_num_heads(backbone: nn.Module) -> int:
    """Heads of the backbone's GeminiFusion layers (the literal model has
    GeminiFusion only).

    Raises:
        ValueError: the backbone has no fusion or another fusion layer.
    """
    cfg = backbone.fusion_cfg
    if cfg is None or cfg.get('type') != 'GeminiFusion':
        raise ValueError('the literal model has a GeminiFusion layer in '
                         f'every block; the config has fusion_cfg={cfg}')
    return int(cfg.get('num_heads', 8))


def mit_hparams(backbone: nn.Module) -> dict:
    """Architecture of a built :class:`GeminiFusionMiT` (its arch
    settings)."""
    return dict(
        embed_dims=list(backbone.embed_dims),
        depths=list(backbone.depths),
        num_heads=list(backbone.num_heads),
        sr_ratios=list(backbone.sr_ratios),
        mlp_ratio=backbone.mlp_ratio)


def _drop_path_rate(cfg) -> float:
    return float(cfg.model['backbone'].get(
        'drop_path_rate',
        0.1 if cfg.model['backbone']['type'] == 'GeminiFusionMiT' else 0.2))


# ---------------------------------------------------------------- (b)
def literal_key_to_fused(key: str) -> str:
    """Map a :class:`LiteralSegmenter` state-dict key to ours.

    The literal keys are the released ones without ``module.``, so this is
    :func:`geminifusion_mmseg.checkpoints.released_key_to_ours`, e.g.
    ``encoder.block1.0.attn.k_noise.weight`` ->
    ``backbone.layers.0.blocks.0.attn.fusion.k_noise.weight``.

    Raises:
        KeyError: a key that belongs to no part of the model.
    """
    mapped = released_key_to_ours(key)
    if mapped is None:
        raise KeyError(f'literal key {key!r} has no counterpart')
    return mapped


def build_literal(fused: nn.Module, drop_path_rate: float) -> nn.Module:
    """(b): the literal model with (a)'s weights.

    Raises:
        KeyError: if a key of either model has no partner.
    """
    from geminifusion_mmseg.testing.literal_mit import LiteralMiT
    from geminifusion_mmseg.testing.literal_segmenter import LiteralSegmenter
    from geminifusion_mmseg.testing.literal_swin import (
        LiteralGeminiFusionSwin, LiteralSwinEncoder)

    bb = fused.backbone
    if backbone_kind(fused) == 'mit':
        hp = mit_hparams(bb)
        encoder = LiteralMiT(
            hp['embed_dims'],
            hp['depths'],
            num_heads=hp['num_heads'],
            sr_ratios=hp['sr_ratios'],
            mlp_ratio=hp['mlp_ratio'],
            drop_path_rate=drop_path_rate,
            n_heads=fusion_num_heads(bb))
        in_channels = hp['embed_dims']
    else:
        encoder = LiteralSwinEncoder(
            LiteralGeminiFusionSwin(
                bb.embed_dims,
                list(bb.depths),
                list(bb.num_heads),
                bb.window_size,
                drop_path_rate=drop_path_rate))
        in_channels = list(bb.num_features)
        if fusion_num_heads(bb) != 8:
            raise ValueError('the literal Swin uses 8 fusion heads; the '
                             f'config has {fusion_num_heads(bb)}')
    head = fused.decode_head
    literal = LiteralSegmenter(
        encoder, in_channels, head.num_classes, embedding_dim=head.channels)
    literal.decoder.dropout.p = head.dropout.p if head.dropout else 0.
    ours = fused.state_dict()
    state = {}
    for key in literal.state_dict():
        mapped = literal_key_to_fused(key)
        if mapped not in ours:
            raise KeyError(f'literal key {key!r} -> {mapped!r} is not in the '
                           'fused model')
        state[key] = ours[mapped]
    unused = set(ours) - {literal_key_to_fused(k) for k in state}
    if unused:
        raise KeyError(f'fused keys without a literal partner: '
                       f'{sorted(unused)[:5]}')
    literal.load_state_dict(state, strict=True)
    return literal


# ---------------------------------------------------------------- (c)
def _efficient_mha(model: nn.Module) -> int:
    """Make every ``nn.MultiheadAttention`` skip its attention weights.

    mmseg's MiT calls ``nn.MultiheadAttention`` with the default
    ``need_weights=True`` and discards the weights; that forces the explicit
    softmax path. With ``need_weights=False`` the same function runs through
    ``F.scaled_dot_product_attention``, as our backbone's self-attention
    does, so (c) is a fair efficient baseline. Returns the count patched.
    """
    count = 0
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            forward = m.forward

            def fast_forward(*args, _forward=forward, **kwargs):
                kwargs['need_weights'] = False
                return _forward(*args, **kwargs)

            m.forward = fast_forward
            count += 1
    return count


def unimodal_backbone_cfg(fused: nn.Module, drop_path_rate: float) -> dict:
    """mmseg's own backbone of the same architecture, 3 input channels."""
    bb = fused.backbone
    if backbone_kind(fused) == 'mit':
        hp = mit_hparams(bb)
        base = hp['embed_dims'][0] // hp['num_heads'][0]
        if [base * h for h in hp['num_heads']] != hp['embed_dims']:
            raise ValueError(
                "mmseg's MixVisionTransformer needs embed_dims = base * "
                f"num_heads; got {hp['embed_dims']} with heads "
                f"{hp['num_heads']}")
        return dict(
            type='MixVisionTransformer',
            in_channels=3,
            embed_dims=base,
            num_stages=4,
            num_layers=hp['depths'],
            num_heads=hp['num_heads'],
            patch_sizes=[7, 3, 3, 3],
            strides=[4, 2, 2, 2],
            sr_ratios=hp['sr_ratios'],
            out_indices=(0, 1, 2, 3),
            mlp_ratio=hp['mlp_ratio'],
            qkv_bias=True,
            drop_rate=0.,
            attn_drop_rate=0.,
            drop_path_rate=drop_path_rate)
    return dict(
        type='SwinTransformer',
        pretrain_img_size=bb.pretrain_img_size,
        in_channels=3,
        embed_dims=bb.embed_dims,
        patch_size=4,
        window_size=bb.window_size,
        mlp_ratio=4,
        depths=list(bb.depths),
        num_heads=list(bb.num_heads),
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=drop_path_rate,
        patch_norm=True)


def build_unimodal(cfg, fused: nn.Module) -> nn.Module:
    """(c): ``EncoderDecoder`` + mmseg's backbone + our head, RGB only."""
    from mmseg.registry import MODELS
    model_cfg = _model_cfg(cfg)
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=unimodal_backbone_cfg(fused, _drop_path_rate(cfg)),
            decode_head=model_cfg['decode_head'],
            train_cfg=model_cfg.get('train_cfg', dict()),
            test_cfg=model_cfg.get('test_cfg', dict(mode='whole'))))
    _efficient_mha(model)
    return model


def build(kind: str, cfg, checkpoint: Optional[str] = None) -> nn.Module:
    """Build (a) 'fused', (b) 'literal' (with (a)'s weights, same seed) or
    (c) 'unimodal'. The fused model is always built first from the same
    seed so every kind sees the same weights where they share them;
    ``checkpoint`` gives (a), hence (b), its weights."""
    torch.manual_seed(0)
    fused = build_fused(cfg, checkpoint)
    if kind == 'fused':
        return fused
    if kind == 'literal':
        return build_literal(fused, _drop_path_rate(cfg))
    if kind == 'unimodal':
        return build_unimodal(cfg, fused)
    raise ValueError(f'unknown model kind {kind!r}')


# ---------------------------------------------------------------- data
def make_batch(batch_size: int,
               img_size: Tuple[int, int],
               num_classes: int,
               seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Deterministic inputs: (B, 6, H, W) normalised rgb+depth and labels
    (B, H, W) in [0, K) with ~5 % ignore (255)."""
    g = torch.Generator().manual_seed(seed)
    H, W = img_size
    rgb = torch.randn(batch_size, 3, H, W, generator=g)
    depth = torch.rand(batch_size, 1, H, W, generator=g).expand(-1, 3, -1, -1)
    labels = torch.randint(0, num_classes, (batch_size, H, W), generator=g)
    ignore = torch.rand(batch_size, H, W, generator=g) < 0.05
    labels[ignore] = 255
    return torch.cat([rgb, depth], dim=1).contiguous(), labels


def data_samples(labels: torch.Tensor) -> list:
    """mmseg ``SegDataSample`` list for (B, H, W) labels."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    H, W = labels.shape[1:]
    for lab in labels:
        s = SegDataSample(
            metainfo=dict(
                img_shape=(H, W),
                ori_shape=(H, W),
                pad_shape=(H, W),
                padding_size=[0, 0, 0, 0]))
        s.gt_sem_seg = PixelData(data=lab[None])
        out.append(s)
    return out


def literal_loss(outs: List[torch.Tensor],
                 labels: torch.Tensor,
                 align_corners: bool = False) -> torch.Tensor:
    """The release's loss: CE (ignore 255, mean over valid pixels) of each
    of the 3 outputs upsampled bilinearly to the labels, summed."""
    total = 0
    for o in outs:
        o = F.interpolate(
            o,
            size=labels.shape[1:],
            mode='bilinear',
            align_corners=align_corners)
        total = total + F.cross_entropy(o.float(), labels, ignore_index=255)
    return total


def sum_losses(losses: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum the ``loss*`` entries of an mmseg loss dict (as parse_losses)."""
    return sum(v for k, v in losses.items() if 'loss' in k)


def step_functions(kind: str, model: nn.Module, inputs: torch.Tensor,
                   labels: torch.Tensor) -> Tuple[Callable, Callable]:
    """``(loss_fn, infer_fn)`` of one model on the shared batch.

    ``loss_fn()`` returns the scalar training loss (forward + loss: the sum
    of the 3 branch CE losses for (a)/(b), one for (c)); ``infer_fn()``
    returns the logits at 1/4 resolution (all branches for (b), the
    ensemble for (a), the only one for (c)).
    """
    if kind == 'fused':
        samples = data_samples(labels)
        return (lambda: sum_losses(model.loss(inputs, samples)),
                lambda: model(inputs, mode='tensor'))
    if kind == 'literal':
        pair = [inputs[:, :3].contiguous(), inputs[:, 3:].contiguous()]
        return (lambda: literal_loss(model(pair), labels), lambda: model(pair))
    if kind == 'unimodal':
        rgb = inputs[:, :3].contiguous()
        samples = data_samples(labels)
        return (lambda: sum_losses(model.loss(rgb, samples)),
                lambda: model(rgb, mode='tensor'))
    raise ValueError(kind)


def set_train(model: nn.Module) -> nn.Module:
    """Training mode with every BatchNorm kept in eval mode, for all three
    kinds: the release freezes BN, (a) does it through ``norm_eval``, and
    (b) and (c) are made to match so the head trains the same way."""
    from torch.nn.modules.batchnorm import _BatchNorm
    model.train()
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
    return model


# ---------------------------------------------------------------- FLOPs
def _conv_backward_flop(grad_out_shape,
                        x_shape,
                        w_shape,
                        _bias,
                        _stride,
                        _padding,
                        _dilation,
                        transposed,
                        _output_padding,
                        _groups,
                        output_mask,
                        out_shape=None,
                        **kwargs) -> int:
    """``aten.convolution_backward``: each requested gradient (input,
    weight) costs what the forward convolution costs.

    torch's own formula counts the weight gradient of a grouped convolution
    as if it were dense (``groups`` times too much: 128x for the MiT's
    depth-wise convolutions).
    """
    from torch.utils.flop_counter import conv_flop_count
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` with ``torch.utils.flop_counter`` (one
    multiply-add = 2 FLOPs; matmul/bmm/baddbmm/conv/attention counted,
    elementwise ops, normalisation and interpolation not).

    ``F.scaled_dot_product_attention`` is forced onto its math backend so
    its two matmuls are counted on every device (the counter has no formula
    for the fused CPU kernel), and the convolution backward formula is
    replaced by a grouped-convolution-aware one.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(
        display=False,
        custom_mapping={
            torch.ops.aten.convolution_backward: _conv_backward_flop
        })
    with sdpa_kernel(SDPBackend.MATH), counter:
        fn()
    return counter.get_total_flops()


def fusion_layer_flops_formula(num_tokens: int,
                               channels: int,
                               num_modalities: int = 2) -> int:
    """Hand count of one :class:`GeminiFusion` forward on (M*B, N, C).

    Per token and modality (L = B*N tokens per modality), multiply-adds:
    the query, the two values and the key difference C^2 each; the
    judger's fc1 (2C -> C, as two C x C halves) 2 C^2 and fc2 C^2; the
    output projection C^2: 8 C^2. Plus, once per modality, the noise
    projections ``Wk k_noise`` and ``Wv v_noise``: 2 C^2. FLOPs = 2 *
    multiply-adds (elementwise work not counted)::

        16 * M * L * C^2 + 4 * M * C^2
    """
    M, C = num_modalities, channels
    return 16 * M * num_tokens * C**2 + 4 * M * C**2


def literal_fusion_flops_formula(num_tokens: int,
                                 channels: int,
                                 num_heads: int = 8,
                                 num_modalities: int = 2) -> int:
    """Hand count of the literal layer: judger 3 C^2, MHA in-projection of
    1 query + 2 keys + 2 values 5 C^2, out-projection C^2; and per head the
    2-key scores and weighted sum, 2 * 2 * d each head (4 C in all):
    FLOPs = 2 * M * L * (9 C^2 + 4 C)."""
    del num_heads  # 2 keys x d per head, summed over heads = 2C per op
    return 2 * num_modalities * num_tokens * (9 * channels**2 + 4 * channels)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

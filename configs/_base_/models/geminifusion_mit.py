# GeminiFusion with a MiT (SegFormer) backbone and the all-MLP head.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # rgb: ImageNet mean/std on 0..255; depth: value / 255 (docs/model.md)
    mean=[123.675, 116.28, 103.53, 0.0, 0.0, 0.0],
    std=[58.395, 57.12, 57.375, 255.0, 255.0, 255.0],
    bgr_to_rgb=False,
    # training batches are padded (after normalisation) to a multiple of 32;
    # the pipelines already pad crops with raw 0 / label 255
    # (RandomRescaleCrop, MultiModalPad)
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='MultiModalEncoderDecoder',
    data_preprocessor=data_preprocessor,
    modality_names=('rgb', 'depth'),
    learn_alpha=False,  # released: alpha stays at ones (plain average)
    norm_eval=True,  # released: BatchNorm frozen in eval mode
    backbone=dict(
        type='GeminiFusionMiT',
        arch='b3',
        in_channels=6,
        drop_path_rate=0.4,
        # the fusion layer of every block (None: no fusion; any module
        # registered in mmseg's MODELS for an ablation)
        fusion_cfg=dict(type='GeminiFusion', num_heads=8)),
    decode_head=dict(
        type='SegFormerMLPHead',
        in_channels=[64, 128, 320, 512],
        channels=256,
        num_classes=40,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

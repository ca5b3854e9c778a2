# Quickstart baseline: the same MiT backbone (mmseg's own unimodal
# MixVisionTransformer) and all-MLP head on RGB alone, same data and
# schedule. A plain single-modality model, also usable as an ablation.
_base_ = ['./geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py']
# also top-level: the Runner gives it to tta_model (--tta), which gives it
# to the wrapped model
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    _delete_=True,
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=32,  # x num_heads (1, 2, 5, 8) = (32, 64, 160, 256)
        num_stages=4,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=0.1),
    decode_head=dict(
        type='SegFormerMLPHead',
        in_channels=[32, 64, 160, 256],
        channels=128,
        num_classes={{_base_.num_classes}},
        dropout_ratio=0.1,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
rgb_train_pipeline = [
    dict(type='LoadImageFromFile'),  # RGB image only (BGR, converted above)
    dict(type='LoadRGBDAnnotations'),
    dict(
        type='RandomResize',
        scale=(4 * 128, 96),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(96, 128)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiModalPad', size=(128, 96), pad_val=dict(img=0, seg=255)),
    dict(type='PackSegInputs'),
]
rgb_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='PackSegInputs'),
]
# --tta: the RGB-D quickstart's views, on the RGB image alone
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadRGBDAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(dataset=dict(pipeline=rgb_train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=rgb_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# Quickstart: GeminiFusion with a small MiT on the synthetic RGB-D dataset
# (generated into data/quickstart_rgbd on first use). Trains and tests on a
# CPU in a few minutes:
#   python tools/train.py configs/quickstart/geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py  # noqa: E501
_base_ = [
    '../_base_/models/geminifusion_mit.py', '../_base_/default_runtime.py'
]
crop_size = (96, 128)
data_root = 'data/quickstart_rgbd'
num_classes = 6
# MiT-B0 widths, one block per stage
mit_tiny = dict(
    _delete_=True, embed_dims=(32, 64, 160, 256), depths=(1, 1, 1, 1))

model = dict(
    norm_eval=False,  # as the RGB-only baseline (stock EncoderDecoder)
    backbone=dict(arch=mit_tiny, drop_path_rate=0.1),
    decode_head=dict(
        in_channels=[32, 64, 160, 256], channels=128, num_classes=num_classes))

train_pipeline = [
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    dict(
        type='RandomResize',
        scale=(4 * crop_size[1], crop_size[0]),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='MultiModalPad',
        size=(crop_size[1], crop_size[0]),
        pad_val=dict(img=0, seg=255)),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='PackSegInputs'),
]
# multi-scale + flip (tools/test.py --tta; tta_model in default_runtime.py):
# the zoo's 6 scales x {no flip, flip}, logits averaged at the label size
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
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
dataset = dict(type='QuickstartRGBDDataset', data_root=data_root)
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, ann_file='train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file='val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiBranchIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-4, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'norm': dict(decay_mult=0.),
        'decode_head': dict(lr_mult=10.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.0,
        by_epoch=False,
        begin=50,
        end=2000)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=1000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=1000,
        max_keep_ckpts=2,
        save_best='mIoU',
        rule='greater'))
randomness = dict(seed=0)

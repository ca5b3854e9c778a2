# NYUDv2, TokenFusion/RefineNet layout (docs/dataset_prepare.md):
# data/nyudv2/{rgb,depth,masks} with train.txt / test.txt. 795 train / 654
# test images, 40 classes. RGB and masks are border-cropped (smaller than
# 480x640, one size per image), depth is the full 480x640 frame.
dataset_type = 'NYUDv2Dataset'
data_root = 'data/nyudv2'
crop_size = (480, 640)  # (h, w)
# Depth of another size than RGB: as released, resized from its own size
# onto the size RGB gets, in the same resize step ('crop': TokenFusion's
# centre crop, geometrically aligned; 'error': refuse). docs/evaluation.md
size_mismatch = 'stretch'

train_pipeline = [
    # depth as stored (16-bit mm) -> /255 by the data preprocessor, as
    # released; see docs/dataset_prepare.md for other encodings
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    # the release's order: colour jitter, flip, blur, then rescale and crop
    # As released, which ALSO blanks RGB: the release jitters a float image
    # in 0..255 with torchvision, which clips float images to [0, 1], so the
    # 20% of samples it jitters reach the network with RGB nearly black (an
    # accidental RGB dropout, p=0.2, that the published numbers were trained
    # with). For the intended colour jitter instead, drop clip_range
    # (default (0, 255)). See docs/dataset_prepare.md.
    dict(type='RGBColorJitter', prob=0.2, clip_range=(0., 1.)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RGBGaussianBlur', prob=0.2, kernel_size=3),
    # the release's RandomResizedCrop: short side = crop_h * U(0.5, 2), long
    # side <= 4 * crop_w * ratio (torch bilinear), a random crop (its
    # off-by-one window included), raw values padded (image 0, label 255)
    dict(
        type='RandomRescaleCrop', crop_size=crop_size, ratio_range=(0.5, 2.0)),
    dict(type='PackSegInputs'),
]
# Published evaluation protocol (docs/dataset_prepare.md): short side 480,
# each side up to a multiple of 32, label resized the same way (nearest) and
# scored there.
test_pipeline = [
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='ResizeShortSideToMultiple', short_side=480, size_divisor=32),
    dict(type='PackSegInputs'),
]
# Multi-scale + flip (tools/test.py --tta): 6 scales of the single-scale
# test size (short side 480, multiples of 32) x {no flip, flip}; each view's
# logits are flipped back, resized to the ORIGINAL label size and averaged
# (tta_model in default_runtime.py), and scored there (mmseg's protocol;
# update_ori_shape=False keeps ori_shape at the original size).
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadRGBDImageFromFile', depth_encoding='raw'),
    dict(
        type='ResizeShortSideToMultiple',
        short_side=480,
        size_divisor=32,
        update_ori_shape=False),
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
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.txt',
        size_mismatch=size_mismatch,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='val.txt',  # the 654-image test split
        size_mismatch=size_mismatch,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiBranchIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

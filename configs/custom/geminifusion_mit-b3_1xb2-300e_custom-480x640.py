# GeminiFusion MiT-B3 on YOUR OWN RGB-D data (docs/custom_dataset.md).
# Everything (model, training recipe, runtime, evaluation protocol) comes
# from the zoo's NYUDv2 MiT-B3 set-up; this file changes only the classes,
# the paths and the crop size. 1 GPU x batch 2.
#
#   python tools/dataset_converters/make_rgbd_lists.py data/my_rgbd
#   python tools/misc/browse_dataset.py CONFIG --output-dir work_dirs/browse
#   python tools/train.py CONFIG
#   python tools/test.py CONFIG work_dirs/<name>/best_mIoU_epoch_*.pth [--tta]
_base_ = [
    '../_base_/models/geminifusion_mit.py', '../_base_/datasets/nyudv2.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_staged_3x100e.py'
]

# ---- 1. classes: label value i is classes[i]; 255 = ignore -------------
classes = ('floor', 'wall', 'door', 'table', 'chair', 'person')
palette = [[128, 64, 128], [70, 70, 70], [190, 153, 153], [153, 153, 153],
           [250, 170, 30], [220, 20, 60]]
# label files where 0 = "unlabelled" and 1..K are the classes: set True
# (0 -> 255, v -> v - 1)
reduce_zero_label = False

# ---- 2. paths: data_root with rgb/ depth/ label/ and the lists written by
# tools/dataset_converters/make_rgbd_lists.py (rgb<TAB>label<TAB>depth)
dataset_type = 'RGBDDataset'
data_root = 'data/my_rgbd'
data_prefix = dict(img_path='rgb', depth_path='depth', seg_map_path='label')

# ---- 3. crop size (h, w): your frames' size, or smaller -----------------
crop_size = (480, 640)

# Depth: 'raw' keeps the stored value, and the data preprocessor divides
# it by 255 (as for the released NYUDv2 models, which saw 16-bit
# millimetres / 255). For other sensors see docs/custom_dataset.md
# ("Choosing the depth encoding"), e.g.
#   dict(type='LoadRGBDImageFromFile', depth_encoding='scale',
#        depth_scale=1000.)   # float32 metres -> millimetre values
load_depth = dict(type='LoadRGBDImageFromFile', depth_encoding='raw')

# the zoo's training augmentation (docs/dataset_prepare.md) at this crop size
train_pipeline = [
    load_depth,
    dict(type='LoadRGBDAnnotations'),
    dict(type='RGBColorJitter', prob=0.2),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RGBGaussianBlur', prob=0.2, kernel_size=3),
    dict(
        type='RandomRescaleCrop', crop_size=crop_size, ratio_range=(0.5, 2.0)),
    dict(type='PackSegInputs'),
]
# single scale, the zoo's protocol: short side = crop height, sides up to
# a multiple of 32, scored at that size (identity for 480x640 frames)
test_pipeline = [
    load_depth,
    dict(type='LoadRGBDAnnotations'),
    dict(
        type='ResizeShortSideToMultiple',
        short_side=crop_size[0],
        size_divisor=32),
    dict(type='PackSegInputs'),
]
# multi-scale + flip (tools/test.py --tta): scales of the test size,
# logits averaged and scored at the original label size
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    load_depth,
    dict(
        type='ResizeShortSideToMultiple',
        short_side=crop_size[0],
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

dataset = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=data_prefix,
    img_suffix='.png',  # used by 1-column lists / pairing without a list
    depth_suffix='.png',
    seg_map_suffix='.png',
    metainfo=dict(classes=classes, palette=palette),
    reduce_zero_label=reduce_zero_label,
    # depth registered to RGB (same size): anything else is an error; see
    # docs/dataset_prepare.md for 'crop' / 'stretch'
    size_mismatch='error')
train_dataloader = dict(
    dataset=dict(dataset, ann_file='train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(dataset, ann_file='val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader

model = dict(
    # the published test protocol: logits upsampled bicubically (as the
    # release's cv2 INTER_CUBIC) before the argmax; see docs/evaluation.md
    test_cfg=dict(mode='whole', resize_mode='bicubic'),
    backbone=dict(
        arch='b3',
        drop_path_rate=0.4,
        # ImageNet weights: see README 'Released checkpoints and pretrained
        # weights'
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/mit_b3.pth')),
    decode_head=dict(num_classes=len(classes)))

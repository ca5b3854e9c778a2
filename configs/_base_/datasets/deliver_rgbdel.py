# DeLiVER, the CMNeXt layout (docs/dataset_prepare.md):
# data/DELIVER/{img,hha,event,lidar,semantic}/<condition>/<split>/<sequence>/
# *_rgb*.png etc. 25 classes; RGB + depth + event + LiDAR.
dataset_type = 'DeLiVERDataset'
data_root = 'data/DELIVER'
crop_size = (1024, 1024)  # (h, w)

# The modalities, RGB first; their order is the channel order of the input
# (3 channels each). Declared once: the datasets, the evaluator and (through
# model.modalities={{_base_.modalities}}) the model follow them.
# RGB-D / RGB-E / RGB-L: deliver_rgbd.py, deliver_rgbe.py, deliver_rgbl.py;
# any other choice: set `modalities`, `norm_mean`, `norm_std` AND the
# datasets' and the evaluator's `modalities` in your config, as those files
# do (a child config's variables do not reach this file's dicts). The
# loader takes the dataset's list.
modalities = ['rgb', 'depth', 'event', 'lidar']
# The data preprocessor's per-channel normalisation for `modalities` (RGB:
# ImageNet mean/std on 0..255; the others: / 255, as published), for the
# model config: data_preprocessor=dict(mean={{_base_.norm_mean}},
# std={{_base_.norm_std}}) and backbone in_channels = 3 * len(modalities).
# Equals geminifusion_mmseg.datasets.modality_mean_std(modalities).
norm_mean = [123.675, 116.28, 103.53] + [0.0] * 3 * (len(modalities) - 1)
norm_std = [58.395, 57.12, 57.375] + [255.0] * 3 * (len(modalities) - 1)

# How the reference reads the files: every modality other than RGB as
# stored (grey repeated to 3 channels, 4 channels cut to 3); 'depth' is the
# *_depth*.png of hha/; event maps (lower resolution in `eventlowres`)
# resized to the RGB size, nearest. Encodings of modalities a dataset does
# not use are ignored.
load_modalities = dict(
    type='LoadMultiModalImageFromFile',
    encodings=dict(depth='image', event='image', lidar='image'),
    resize_to_rgb=('event', ))
# labels: the first channel of semantic/*.png; 0 and 255 -> 255 (ignored),
# 1..25 -> 0..24 (the dataset's reduce_zero_label=True)
load_labels = dict(type='LoadMultiModalAnnotations')

train_pipeline = [
    load_modalities,
    load_labels,
    # the reference's order: colour jitter, flip, blur, then rescale and crop.
    # Colour jitter of the RGB channels with the usual clip to 0..255: the
    # reference jitters the uint8 tensors of torchvision.io.read_image, which
    # torchvision clamps to 255, so the RGB blackout of the NYUDv2 / SUN
    # RGB-D release (float images clipped to [0, 1]) does NOT happen here.
    # uint8=True: truncated to integers after each step and the blur rounded,
    # as torchvision does to uint8 tensors.
    dict(type='RGBColorJitter', prob=0.2, clip_range=(0., 255.), uint8=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RGBGaussianBlur', prob=0.2, kernel_size=3, uint8=True),
    # the reference's RandomResizedCrop(crop, scale=(0.5, 2.0), seg_fill=255)
    # (the NYUDv2 release's code) on its integer tensors: rounded per modality
    dict(
        type='RandomRescaleCrop',
        crop_size=crop_size,
        ratio_range=(0.5, 2.0),
        round_result=True),
    dict(type='PackSegInputs'),
]
# The reference's validation (get_val_augmentation(1024)): short side to
# 1024, then each side up to a multiple of 32, on the uint8 tensors (rounded
# after each step: round_result), label nearest; scored at that size.
test_pipeline = [
    load_modalities,
    load_labels,
    dict(
        type='ResizeShortSideToMultiple',
        short_side=crop_size[0],
        size_divisor=32,
        round_result=True),
    dict(type='PackSegInputs'),
]
# Multi-scale + flip (tools/test.py --tta), mmseg's protocol: logits of each
# view resized to the original label size and averaged, scored there.
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    load_modalities,
    dict(
        type='ResizeShortSideToMultiple',
        short_side=crop_size[0],
        size_divisor=32,
        update_ori_shape=False,
        round_result=True),
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
            [load_labels],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(
    batch_size=1,  # the reference: 1 image x 8 GPUs
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        modalities=modalities,
        pipeline=train_pipeline))
# Scores the whole val split; to score one adverse condition or sensor
# failure alone add e.g. case='night' (or case=['motionblur', 'fog']) to
# the dataset, e.g. --cfg-options test_dataloader.dataset.case=night
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        modalities=modalities,
        case=None,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# the ensemble prediction is the one scored (mIoU, as the reference); the
# branches (one per backbone stream, named from the modalities) are logged
val_evaluator = dict(
    type='MultiBranchIoUMetric', iou_metrics=['mIoU'], modalities=modalities)
test_evaluator = val_evaluator

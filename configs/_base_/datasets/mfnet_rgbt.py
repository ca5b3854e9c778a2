# MFNet RGB-thermal, the layout of the GeminiFusion DeLiVER branch
# (docs/dataset_prepare.md): data/MFNet/{rgb,ther,labels}/<name>.png,
# train.txt / test.txt. 9 classes ('unlabeled' is class 0, 255 ignored),
# 480x640 images.
dataset_type = 'MFNetDataset'
data_root = 'data/MFNet'
crop_size = (480, 640)  # (h, w), the CMNeXt MFNet config's IMAGE_SIZE

modalities = ['rgb', 'thermal']
# per-channel normalisation (RGB: ImageNet mean/std; thermal: / 255), for
# data_preprocessor=dict(mean={{_base_.norm_mean}}, std={{_base_.norm_std}})
norm_mean = [123.675, 116.28, 103.53] + [0.0] * 3 * (len(modalities) - 1)
norm_std = [58.395, 57.12, 57.375] + [255.0] * 3 * (len(modalities) - 1)

# thermal: grey repeated to 3 channels; a 4-channel (RGB-T) PNG gives its
# 4th channel; RGB: the first 3 channels (the default encodings)
load_modalities = dict(type='LoadMultiModalImageFromFile')
load_labels = dict(type='LoadMultiModalAnnotations')

train_pipeline = [
    load_modalities,
    load_labels,
    # uint8 tensors in the reference: jitter clamps to 255 (no RGB blackout)
    # and truncates after each step, the blur rounds (see deliver_rgbdel.py)
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
# get_val_augmentation([480, 640]): short side 480, multiples of 32, uint8
# rounding (the identity for MFNet's 480x640 images)
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
# multi-scale + flip (tools/test.py --tta), as the DeLiVER configs: views
# of the single-scale test size, logits averaged at the original label size
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
    batch_size=4,  # the CMNeXt MFNet config's BATCH_SIZE (per GPU)
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
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',  # test.txt
        modalities=modalities,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='MultiBranchIoUMetric', iou_metrics=['mIoU'], modalities=modalities)
test_evaluator = val_evaluator

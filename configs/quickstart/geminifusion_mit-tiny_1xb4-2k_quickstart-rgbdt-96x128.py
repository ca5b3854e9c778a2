# Quickstart with three sensors: GeminiFusion (small MiT) on RGB + depth +
# thermal of the synthetic RGB-D-T dataset (generated into
# data/quickstart_rgbdt on first use; a warm and a cold box class differ
# only in temperature). K = 3 modalities: the backbone fuses RGB with the
# token selection of depth and thermal (docs/model.md "K modalities").
# Everything else (head, loss, optimiser, schedule, seed, augmentation) is
# the RGB-D quickstart config's, so the RGB-D model on the same data
# (geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-rgbd-only-96x128.py)
# differs only in the sensors it reads.
#   python tools/train.py configs/quickstart/geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py  # noqa: E501
_base_ = ['./geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py']
crop_size = (96, 128)
data_root = 'data/quickstart_rgbdt'
num_classes = 8
# RGB first; 3 input channels per modality (depth and thermal repeated)
modalities = ['rgb', 'depth', 'thermal']
# RGB: ImageNet mean/std on 0..255; depth (raw millimetres) and thermal:
# / 255 (= geminifusion_mmseg.datasets.modality_mean_std(modalities))
norm_mean = [123.675, 116.28, 103.53] + [0.0] * 3 * (len(modalities) - 1)
norm_std = [58.395, 57.12, 57.375] + [255.0] * 3 * (len(modalities) - 1)

# also top-level: the Runner gives it to tta_model (--tta)
data_preprocessor = dict(mean=norm_mean, std=norm_std)
model = dict(
    data_preprocessor=data_preprocessor,
    # the backbone's in_channels (3 per modality) and num_modalities, and
    # one name per backbone stream (RGB and the fusion of depth + thermal:
    # ('rgb', 'fused')) follow `modalities`
    modalities=modalities,
    modality_names=None,
    backbone=dict(in_channels=None, num_modalities=None),
    decode_head=dict(num_classes=num_classes))

load_modalities = dict(
    type='LoadMultiModalImageFromFile',
    encodings=dict(depth='raw'))  # as the RGB-D quickstart; thermal: grey
train_pipeline = [
    load_modalities,
    dict(type='LoadMultiModalAnnotations'),
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
    load_modalities,
    dict(type='LoadMultiModalAnnotations'),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]  # as the RGB-D quickstart
tta_pipeline = [
    load_modalities,
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
            [dict(type='LoadMultiModalAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
dataset = dict(
    _delete_=True,
    type='QuickstartRGBDTDataset',
    data_root=data_root,
    modalities=modalities)
train_dataloader = dict(
    dataset=dict(dataset, ann_file='train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(dataset, ann_file='val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
# the ensemble is scored; the branches of `modalities` (rgb, fused) are
# logged too
val_evaluator = dict(modalities=modalities)
test_evaluator = val_evaluator

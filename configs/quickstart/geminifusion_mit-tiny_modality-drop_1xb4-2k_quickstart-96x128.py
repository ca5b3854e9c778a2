# The quickstart GeminiFusion config trained with modality dropout: each
# training sample loses its RGB image (black) with probability 0.1, or its
# depth map (0 = no measurement, as sensors store it) with probability 0.1.
# The model then keeps working when a sensor fails at test time
# (docs/robustness.md has the numbers). Train with
#   python tools/train.py CONFIG  (this file)
_base_ = ['./geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py']
crop_size = (96, 128)

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
    # same depth_encoding as the loader: the missing value follows it
    dict(
        type='RandomModalityDrop',
        rgb_prob=0.1,
        depth_prob=0.1,
        depth_encoding='raw'),
    dict(
        type='MultiModalPad',
        size=(crop_size[1], crop_size[0]),
        pad_val=dict(img=0, seg=255)),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# GeminiFusion Swin-L-384 on NYUDv2, fine-tuned from the SUN RGB-D model:
# published single-scale mIoU 60.9 (configs/geminifusion/README.md). All
# weights except the classifier come from the SUN RGB-D checkpoint
# (37 -> 40 classes: the classifier's shape differs, so mmengine skips it
# with a warning); stages of 100 / 200 / 100 epochs; dpr 0.15.
_base_ = ['./geminifusion_swin-l-384_3xb2-300e_nyudv2-480x640.py']
# the converted (tools/model_converters/geminifusion2mmseg.py) or trained
# SUN RGB-D Swin-L-384 checkpoint
load_from = 'checkpoints/geminifusion_swin-l-384_sunrgbd.pth'
model = dict(backbone=dict(drop_path_rate=0.15, init_cfg=None))
param_scheduler = [
    dict(
        type='StagedPolyLR',
        stage_lengths=(100, 200, 100),
        stage_factors=(1.0, 0.5, 0.25),
        warmup_iters=1500,
        warmup_ratio=1e-6,
        poly_iters=40000,
        power=1.0,
        by_epoch=True,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=400)

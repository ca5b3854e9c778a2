# GeminiFusion Swin-S on NYUDv2: published single-scale mIoU 55.0
# (configs/geminifusion/README.md);
# 3 GPUs x batch 2, 3 stages x 100 epochs, dpr 0.4.
# ImageNet weights: see README 'Released checkpoints and pretrained weights'.
_base_ = [
    '../_base_/models/geminifusion_swin.py', '../_base_/datasets/nyudv2.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_staged_3x100e.py'
]
model = dict(
    # the published test protocol: logits upsampled bicubically (as the
    # release's cv2 INTER_CUBIC) before the argmax; see docs/evaluation.md
    test_cfg=dict(mode='whole', resize_mode='bicubic'),
    backbone=dict(
        arch='small',
        drop_path_rate=0.4,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrained/swin_small_patch4_window7_224.pth')))

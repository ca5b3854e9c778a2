# GeminiFusion Swin-L-384 on NYUDv2: published single-scale mIoU 60.2
# (configs/geminifusion/README.md);
# 3 GPUs x batch 2, 3 stages x 100 epochs, dpr 0.2.
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
        arch='large-384',
        drop_path_rate=0.2,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='pretrained/swin_large_patch4_window12_384_22k.pth')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))

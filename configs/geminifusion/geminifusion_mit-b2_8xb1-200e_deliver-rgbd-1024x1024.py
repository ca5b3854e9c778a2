# GeminiFusion MiT-B2 on DeLiVER, RGB-D: published mIoU 66.4
# (DeLiVER val split, ensemble prediction; README and train.sh of branch
# DeLiVER of JiaDingCN/GeminiFusion).
# 8 GPUs x batch 1, 1024x1024 crops, 200 epochs, AdamW 2e-4, warmup poly,
# OHEM loss on rgb / depth / ensemble, alpha trained; dpr 0.4
# (train.sh: --drop_path_rate 0.4).
# Branch config: configs/deliver_rgbd_8cards_2e-4.yaml.
# Released weights: geminifusion_b2_deliver_rgbd.pth (release DeLiVER_V2),
# converted by tools/model_converters/geminifusion2mmseg.py.
# ImageNet weights: NVlabs SegFormer mit_b2.pth (README 'Released
# checkpoints and pretrained weights').
_base_ = [
    '../_base_/models/geminifusion_mit_deliver.py',
    '../_base_/datasets/deliver_rgbd.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_warmup_poly_200e.py'
]
# modalities ['rgb', 'depth']
# (the dataset config's `modalities`), 3 channels each
data_preprocessor = dict(mean={{_base_.norm_mean}}, std={{_base_.norm_std}})
model = dict(
    data_preprocessor=data_preprocessor,
    # one name per stream: rgb and depth
    modality_names=('rgb', 'depth'),
    backbone=dict(
        arch='b2',
        in_channels=6,
        num_modalities=2,
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/mit_b2.pth')),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=25))
# the ensemble is scored (as the branch); the branches are logged too
val_evaluator = dict(branches=('rgb', 'depth'))
test_evaluator = val_evaluator

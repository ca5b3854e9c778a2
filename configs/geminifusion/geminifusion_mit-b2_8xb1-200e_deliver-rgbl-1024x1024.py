# GeminiFusion MiT-B2 on DeLiVER, RGB-L: published mIoU 58.6
# (DeLiVER val split, ensemble prediction; README and train.sh of branch
# DeLiVER of JiaDingCN/GeminiFusion).
# 8 GPUs x batch 1, 1024x1024 crops, 200 epochs, AdamW 2e-4, warmup poly,
# OHEM loss on rgb / lidar / ensemble, alpha trained; dpr 0.4
# (train.sh: --drop_path_rate 0.4).
# Branch config: configs/deliver_rgbl_8cards_2e-4.yaml.
# Released weights: geminifusion_b2_deliver_rgbl.pth (release DeLiVER_V2),
# converted by tools/model_converters/geminifusion2mmseg.py.
# ImageNet weights: NVlabs SegFormer mit_b2.pth (README 'Released
# checkpoints and pretrained weights').
_base_ = [
    '../_base_/models/geminifusion_mit_deliver.py',
    '../_base_/datasets/deliver_rgbl.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_warmup_poly_200e.py'
]
data_preprocessor = dict(mean={{_base_.norm_mean}}, std={{_base_.norm_std}})
model = dict(
    data_preprocessor=data_preprocessor,
    # in_channels (3 per modality), num_modalities and the stream names
    # (one per branch) follow the dataset config's `modalities`
    modalities={{_base_.modalities}},
    backbone=dict(
        arch='b2',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/mit_b2.pth')),
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=25))

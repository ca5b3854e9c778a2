# GeminiFusion MiT-B4 on MFNet RGB-T with the DeLiVER code line's model
# (docs/model.md "K modalities"; two modalities, so no token selection).
# No GeminiFusion MFNet model was published: the recipe is CMNeXt's
# configs/mfnet_rgbt.yaml (jamycheung/DELIVER), which the GeminiFusion
# DeLiVER branch's tools/train_mm.py reads the same way:
#   backbone MiT-B4 (CMNeXt-B4, mit_b4.pth)      MODEL.BACKBONE/PRETRAINED
#   480x640 crops and evaluation size             TRAIN/EVAL.IMAGE_SIZE
#   batch 4 per GPU, 4 GPUs                       TRAIN.BATCH_SIZE; the
#                                                 README's 4-GPU examples
#   500 epochs, validation after epoch 300        EPOCHS, EVAL_START
#   AdamW lr 6e-5, weight decay 0.01              OPTIMIZER
#   warmup poly: power 0.9, 10 epochs, ratio 0.1  SCHEDULER
#   cross-entropy (not OHEM)                      LOSS.NAME CrossEntropy
#   dpr 0.4                                       train_mm.py's default
# The GeminiFusion branch's own parts: decode head lr x10, 512 head
# channels, alpha trained, the loss summed over rgb / thermal / ensemble.
_base_ = [
    '../_base_/models/geminifusion_mit_deliver.py',
    '../_base_/datasets/mfnet_rgbt.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_warmup_poly_200e.py'
]
data_preprocessor = dict(mean={{_base_.norm_mean}}, std={{_base_.norm_std}})
model = dict(
    data_preprocessor=data_preprocessor,
    # in_channels (3 per modality), num_modalities and the stream names
    # (one per branch) follow the dataset config's `modalities`
    modalities={{_base_.modalities}},
    backbone=dict(
        arch='b4',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/mit_b4.pth')),
    decode_head=dict(
        in_channels=[64, 128, 320, 512],
        num_classes=9,
        # CMNeXt's CrossEntropy: mean over the labelled pixels
        loss_decode=dict(
            _delete_=True,
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)))
optim_wrapper = dict(optimizer=dict(lr=6e-5))
max_epochs = 500
# 784 MFNet training images // (4 per GPU x 4 GPUs)
iters_per_epoch = 784 // (4 * 4)
param_scheduler = [
    dict(
        type='WarmupPolyLR',
        warmup_iters=10 * iters_per_epoch,
        max_iters=(max_epochs + 1) * iters_per_epoch,
        warmup_ratio=0.1,
        power=0.9,
        by_epoch=False)
]
train_cfg = dict(max_epochs=max_epochs, val_begin=301, val_interval=1)

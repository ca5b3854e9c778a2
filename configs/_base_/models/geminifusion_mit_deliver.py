# GeminiFusion, the DeLiVER code line (docs/model.md "K modalities"): a MiT
# backbone over K input modalities (RGB first; the blocks fuse two streams,
# RGB and the token selection of the other K - 1), the all-MLP head with
# 512 channels, a trained ensemble weight and the OHEM loss on every branch.
# Source: branch DeLiVER of JiaDingCN/GeminiFusion, semseg/models/
# geminifusion.py, backbones/geminifusion_backbone.py, tools/train_mm.py.
# A dataset config sets `modalities`, `norm_mean`, `norm_std`; the model
# config then sets backbone in_channels / num_modalities (3 per modality)
# and the data preprocessor's mean/std from them.
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # RGB-D; the configs replace them with the dataset's norm_mean/norm_std
    mean=[123.675, 116.28, 103.53, 0.0, 0.0, 0.0],
    std=[58.395, 57.12, 57.375, 255.0, 255.0, 255.0],
    bgr_to_rgb=False,
    size_divisor=32,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='MultiModalEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # one name per backbone stream: ('rgb', <the other modality>) for two
    # modalities, ('rgb', 'fused') for more
    modality_names=('rgb', 'depth'),
    learn_alpha=True,  # the branch trains alpha (ensemble loss only)
    norm_eval=False,  # the branch trains the head's BatchNorm
    backbone=dict(
        type='GeminiFusionMiT',
        arch='b2',
        in_channels=6,
        num_modalities=2,
        drop_path_rate=0.4,  # train.sh: 0.4 (0.2 for RGB-D-E-L)
        fusion_cfg=dict(type='GeminiFusion', num_heads=8)),
    decode_head=dict(
        type='SegFormerMLPHead',
        in_channels=[64, 128, 320, 512],
        channels=512,  # every variant (the branch's B0/B1 test never fires)
        num_classes=25,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        # CMNeXt's OhemCrossEntropy(thresh=0.7), at least valid // 16
        # pixels, summed with equal weight over rgb / second stream / ens
        loss_decode=dict(
            type='OhemCrossEntropyLoss', thresh=0.7, min_kept_divisor=16)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

# GeminiFusion, the DeLiVER code line (docs/model.md "K modalities"): the
# MiT model of geminifusion_mit.py over K input modalities (RGB first; the
# blocks fuse two streams, RGB and the token selection of the other K - 1),
# with what the branch changes: the all-MLP head with 512 channels, a
# trained ensemble weight, the head's BatchNorm trained and the OHEM loss on
# every branch.
# Source: branch DeLiVER of JiaDingCN/GeminiFusion, semseg/models/
# geminifusion.py, backbones/geminifusion_backbone.py, tools/train_mm.py.
# A dataset config declares `modalities` (and derives `norm_mean`,
# `norm_std`, the datasets' and the evaluator's modalities from it); the
# model config passes them on, modalities={{_base_.modalities}}, and the
# data preprocessor's mean=/std={{_base_.norm_mean}} / {{_base_.norm_std}}.
# The segmentor derives from `modalities` the backbone's in_channels (3 per
# modality) and num_modalities, and one name per backbone stream:
# ('rgb', <the other modality>) for two modalities, ('rgb', 'fused') for
# more. Without `modalities` (None here): RGB-D, in_channels 6.
_base_ = ['./geminifusion_mit.py']
model = dict(
    modalities=None,
    modality_names=None,  # from `modalities` (default ('rgb', 'depth'))
    learn_alpha=True,  # the branch trains alpha (ensemble loss only)
    norm_eval=False,  # the branch trains the head's BatchNorm
    # train.sh: drop path 0.4 (0.2 for RGB-D-E-L); in_channels and
    # num_modalities from `modalities` (None: the backbone's 6 and 2)
    backbone=dict(
        arch='b2', in_channels=None, num_modalities=None, drop_path_rate=0.4),
    decode_head=dict(
        channels=512,  # every variant (the branch's B0/B1 test never fires)
        num_classes=25,
        # CMNeXt's OhemCrossEntropy(thresh=0.7), at least valid // 16
        # pixels, summed with equal weight over rgb / second stream / ens
        loss_decode=dict(
            _delete_=True,
            type='OhemCrossEntropyLoss',
            thresh=0.7,
            min_kept_divisor=16)))

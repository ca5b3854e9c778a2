# GeminiFusion with a Swin backbone and the all-MLP head.
_base_ = ['./geminifusion_mit.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='GeminiFusionSwin',
        arch='tiny',
        in_channels=6,
        drop_path_rate=0.2,
        # the fusion layer of every block (None: no fusion; any module
        # registered in mmseg's MODELS for an ablation)
        fusion_cfg=dict(type='GeminiFusion', num_heads=8)),
    decode_head=dict(in_channels=[96, 192, 384, 768]))

# GeminiFusion MiT-B3 on NYUDv2 with fusion only in the last 4 of the 28
# blocks (the paper's Table 8; configs/geminifusion/README.md "Fusion
# depth"): the other blocks are the shared backbone with per-modality norms.
# Everything else as the full MiT-B3 NYUDv2 config.
_base_ = ['./geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py']
model = dict(backbone=dict(fusion_last_k=4))

# Fine-tune the released GeminiFusion MiT-B3 NYUDv2 model on your own
# RGB-D data (the fine-tuning path of docs/training.md): every weight comes
# from the NYUDv2 checkpoint except the classifier (decode_head.conv_seg),
# which is re-initialised by ReinitClassifierHook -- also when your class count
# happens to equal NYUDv2's 40. Same data, schedule and evaluation as
#   configs/custom/geminifusion_mit-b3_1xb2-300e_custom-480x640.py
_base_ = ['./geminifusion_mit-b3_1xb2-300e_custom-480x640.py']

# the released MiT-B3 NYUDv2 model converted with
#   python tools/model_converters/geminifusion2mmseg.py \
#       mit-b3.pth.tar checkpoints/geminifusion_mit-b3_nyudv2.pth
# (or any checkpoint of the zoo's MiT-B3 config)
load_from = 'checkpoints/geminifusion_mit-b3_nyudv2.pth'
model = dict(backbone=dict(init_cfg=None))  # weights come from load_from

custom_hooks = [
    dict(type='StageOptimizerResetHook'),  # as in the zoo configs
    dict(type='ReinitClassifierHook'),  # fresh decode_head.conv_seg
]

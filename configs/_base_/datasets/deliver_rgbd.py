# DeLiVER, RGB-D: deliver_rgbdel.py with modalities ['rgb', 'depth'].
_base_ = ['./deliver_rgbdel.py']
modalities = ['rgb', 'depth']
norm_mean = [123.675, 116.28, 103.53] + [0.0] * 3 * (len(modalities) - 1)
norm_std = [58.395, 57.12, 57.375] + [255.0] * 3 * (len(modalities) - 1)
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
val_evaluator = dict(modalities=modalities)
test_evaluator = val_evaluator

# The RGB-D comparison for the three-sensor quickstart: the same model,
# data, schedule and seed as
# geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py, but the dataset
# gives only RGB and depth (K = 2, the RGB-D quickstart's model). It cannot
# tell the warm box from the cold box (they differ only in temperature).
#   python tools/train.py configs/quickstart/geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-rgbd-only-96x128.py  # noqa: E501
_base_ = ['./geminifusion_mit-tiny_1xb4-2k_quickstart-rgbdt-96x128.py']
modalities = ['rgb', 'depth']
norm_mean = [123.675, 116.28, 103.53] + [0.0] * 3 * (len(modalities) - 1)
norm_std = [58.395, 57.12, 57.375] + [255.0] * 3 * (len(modalities) - 1)
# also top-level: the Runner gives it to tta_model (--tta)
data_preprocessor = dict(mean=norm_mean, std=norm_std)
# in_channels, num_modalities, the stream names and the evaluator's
# branches ('rgb', 'depth') follow `modalities`
model = dict(data_preprocessor=data_preprocessor, modalities=modalities)
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
val_evaluator = dict(modalities=modalities)
test_evaluator = val_evaluator

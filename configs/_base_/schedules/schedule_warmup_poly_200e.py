# The DeLiVER code line's recipe (branch DeLiVER of JiaDingCN/GeminiFusion:
# configs/deliver_*_8cards_2e-4.yaml, semseg/optimizers.py, CMNeXt's
# semseg/schedulers.py, tools/train_mm.py; docs/model.md "K modalities").
#
# AdamW lr 2e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01; the
# branch's get_optimizer: every decode-head parameter at lr x10 (weight
# decay kept), every other 1-d parameter (norms, biases, alpha) without
# weight decay.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={'decode_head': dict(lr_mult=10.)}, flat_decay_mult=0.))
max_epochs = 200
# The branch's scheduler length unit: len(train set) // batch // GPUs =
# 3983 DeLiVER training frames // (1 x 8) = 497 (the loader runs 498
# iterations an epoch: the distributed sampler pads the last one).
iters_per_epoch = 3983 // (1 * 8)
# WarmupPolyLR(power 0.9, warmup 10 epochs from ratio 0.1), over
# (epochs + 1) * iters_per_epoch iterations, stepped every iteration.
param_scheduler = [
    dict(
        type='WarmupPolyLR',
        warmup_iters=10 * iters_per_epoch,
        max_iters=(max_epochs + 1) * iters_per_epoch,
        warmup_ratio=0.1,
        power=0.9,
        by_epoch=False)
]
# validation every epoch after epoch 100 (EVAL_START 100, EVAL_INTERVAL 1)
train_cfg = dict(
    type='EpochBasedTrainLoop',
    max_epochs=max_epochs,
    val_begin=101,
    val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

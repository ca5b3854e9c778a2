# The published recipe (docs/training.md): 3 stages of 100 epochs, each a
# fresh AdamW at base lr 6e-5 / 3e-5 / 1.5e-5 with its own 1500-iteration
# warmup and a poly decay over 40000 iterations counted from the stage start.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.),  # encoder norms: no weight decay
            'decode_head': dict(lr_mult=10.),  # decoder: lr x10
        }))
param_scheduler = [
    dict(
        type='StagedPolyLR',
        stage_lengths=(100, 100, 100),
        stage_factors=(1.0, 0.5, 0.25),
        warmup_iters=1500,
        warmup_ratio=1e-6,
        poly_iters=40000,
        power=1.0,
        by_epoch=True,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# fresh AdamW moments at each stage start, as released
custom_hooks = [dict(type='StageOptimizerResetHook')]

# Runtime defaults shared by every GeminiFusion config.
default_scope = 'mmseg'
custom_imports = dict(
    imports=['geminifusion_mmseg'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # crash-safe saves; keeps the best checkpoint by mIoU
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=True,
        interval=5,
        max_keep_ckpts=2,
        save_best='mIoU',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # message-hub buffers as plain arrays: checkpoints load weights-only
    weights_only_checkpoint=dict(type='WeightsOnlyCheckpointHook'),
    # torch RNG saved and restored on resume, and kept out of validation:
    # a resumed single-process run is bit-exact (docs/training.md)
    resume_rng_state=dict(type='ResumeRNGStateHook'),
    # stop at the first NaN/inf loss, naming the iteration and the loss
    non_finite_loss=dict(type='NonFiniteLossHook'),
    # one training run per work_dir (work_dir/train.lock)
    work_dir_lock=dict(type='WorkDirLockHook'),
    # applies `compile` below (backbone + head; no-op while it is unset)
    compile=dict(type='TorchCompileHook'),
    # RGB | depth | GT | prediction panels; the test tools switch it on
    # (tools/test.py --show-dir / --show, mmseg's tools/test.py too)
    visualization=dict(type='RGBDVisualizationHook', draw=False),
)

# Training fast path: torch.compile of the backbone and the decode head
# (one graph each, forward and backward; the first iterations compile).
# Same losses as eager; falls back to eager, with a log line, where it cannot
# apply. Also: tools/train.py --compile, or --cfg-options compile=True.
# compile = True  # or dict(mode='max-autotune-no-cudagraphs', dynamic=None)

# multi-scale + flip test (tools/test.py --tta); model side: the logits of
# all views (flipped back, resized to the label size) are averaged; the
# dataset configs define the views (tta_pipeline). merge='probs' averages
# softmax probabilities instead, as mmseg's SegTTAModel does.
tta_model = dict(type='MultiModalSegTTAModel', merge='logits')

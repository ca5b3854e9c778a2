from .atomic_checkpoint_hook import AtomicCheckpointHook
from .compile_hook import TorchCompileHook
from .non_finite_loss_hook import (NonFiniteLossError, NonFiniteLossHook,
                                   NonFiniteWeightsError)
from .reinit_classifier_hook import ReinitClassifierHook
from .resume_rng_state_hook import ResumeRNGStateHook
from .rgbd_visualization_hook import RGBDVisualizationHook
from .stage_optimizer_reset_hook import StageOptimizerResetHook
from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook
from .work_dir_lock_hook import WorkDirBusyError, WorkDirLockHook

__all__ = [
    'AtomicCheckpointHook', 'NonFiniteLossError', 'NonFiniteLossHook',
    'NonFiniteWeightsError', 'ReinitClassifierHook', 'ResumeRNGStateHook',
    'RGBDVisualizationHook', 'StageOptimizerResetHook', 'TorchCompileHook',
    'WeightsOnlyCheckpointHook', 'WorkDirBusyError', 'WorkDirLockHook'
]

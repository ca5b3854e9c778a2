"""Weights: reading checkpoint files, recognising their format, and
bringing them into this plugin's models.

This package sits ABOVE :mod:`geminifusion_mmseg.models`: it imports the
backbones (each family's key maps live beside its model, e.g.
:class:`~geminifusion_mmseg.models.backbones.MiTKeyMap`), never the other
way round. The backbones reach :func:`load_pretrained_backbone` through the
loader registry of :mod:`geminifusion_mmseg.models.utils.pretrained_loading`
(importing this package registers it).

* :mod:`.io`: weights-only file reading, the one prefix-stripping helper,
  state-dict unwrapping and key-layout upgrades.
* :mod:`.pretrained`: ImageNet (NVlabs / mmseg MiT, Microsoft / mmpretrain
  Swin) and GeminiFusion checkpoints -> a backbone.
* :mod:`.released`: released GeminiFusion ``.pth.tar`` -> our segmentor.
* :mod:`.loading`: any of these into a segmentor, strictly (``init_model``
  and ``tools/test.py``), and the class-name checks.
"""
from .io import (CheckpointFormatError, CheckpointLoadError, read_checkpoint,
                 strip_prefix, unwrap_state_dict, upgrade_state_dict)
from .loading import (CheckpointMismatchError, check_dataset_classes,
                      load_segmentor_checkpoint, load_test_checkpoint)
from .pretrained import (PretrainedFormatError, detect_pretrained_format,
                         load_pretrained_backbone)
from .released import (ReleasedCheckpointError, ReleasedModelInfo,
                       check_converted_state_dict, convert_released_checkpoint,
                       convert_released_state_dict, detect_released_model,
                       find_matching_configs, find_released_state_dict,
                       load_released_checkpoint, model_config_fragment,
                       released_key_to_ours, strip_ddp_prefix)

__all__ = [
    'CheckpointFormatError', 'CheckpointLoadError', 'read_checkpoint',
    'strip_prefix', 'unwrap_state_dict', 'upgrade_state_dict',
    'CheckpointMismatchError', 'check_dataset_classes',
    'load_segmentor_checkpoint', 'load_test_checkpoint',
    'PretrainedFormatError', 'detect_pretrained_format',
    'load_pretrained_backbone', 'ReleasedCheckpointError', 'ReleasedModelInfo',
    'check_converted_state_dict', 'convert_released_checkpoint',
    'convert_released_state_dict', 'detect_released_model',
    'find_matching_configs', 'find_released_state_dict',
    'load_released_checkpoint', 'model_config_fragment',
    'released_key_to_ours', 'strip_ddp_prefix'
]

from .modal_input import check_modal_input, split_modalities
from .pretrained import PretrainedFormatError, load_pretrained_backbone
from .released_checkpoint import (ReleasedCheckpointError, ReleasedModelInfo,
                                  convert_released_checkpoint,
                                  convert_released_state_dict,
                                  detect_released_model,
                                  model_config_fragment)

__all__ = [
    'check_modal_input', 'split_modalities', 'PretrainedFormatError',
    'load_pretrained_backbone', 'ReleasedCheckpointError',
    'ReleasedModelInfo', 'convert_released_checkpoint',
    'convert_released_state_dict', 'detect_released_model',
    'model_config_fragment'
]

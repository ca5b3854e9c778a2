from .modal_input import check_modal_input, split_modalities
from .pretrained_loading import (is_pretrained_cfg, load_pretrained,
                                 pretrained_kwargs, register_pretrained_loader)

__all__ = [
    'check_modal_input', 'split_modalities', 'is_pretrained_cfg',
    'load_pretrained', 'pretrained_kwargs', 'register_pretrained_loader'
]

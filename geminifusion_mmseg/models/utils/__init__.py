from .modal_input import check_modal_input, split_modalities
from .pretrained_loading import (is_pretrained_cfg, load_pretrained,
                                 pretrained_kwargs, register_pretrained_loader)
from .streams import resolve_backbone_cfg, resolve_stream_names, stream_names

__all__ = [
    'check_modal_input', 'split_modalities', 'is_pretrained_cfg',
    'load_pretrained', 'pretrained_kwargs', 'register_pretrained_loader',
    'resolve_backbone_cfg', 'resolve_stream_names', 'stream_names'
]

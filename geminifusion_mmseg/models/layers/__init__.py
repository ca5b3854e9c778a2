from .gelu_linear import gelu_linear
from .gemini_fusion import GeminiFusion, build_fusion_layer
from .modality_norm import ModalityLayerNorm

__all__ = [
    'GeminiFusion', 'ModalityLayerNorm', 'build_fusion_layer', 'gelu_linear'
]

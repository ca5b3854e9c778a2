from .gelu_linear import gelu_linear
from .gemini_fusion import GeminiFusion
from .modality_norm import ModalityLayerNorm

__all__ = ['GeminiFusion', 'ModalityLayerNorm', 'gelu_linear']

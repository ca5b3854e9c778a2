from .gemini_fusion import GeminiFusion
from .modality_norm import ModalityLayerNorm

__all__ = ['GeminiFusion', 'ModalityLayerNorm']

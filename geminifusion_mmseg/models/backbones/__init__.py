from .gemini_mit import GeminiFusionMiT
from .gemini_swin import GeminiFusionSwin

__all__ = ['GeminiFusionMiT', 'GeminiFusionSwin']

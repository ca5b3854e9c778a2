from .base import GeminiFusionBackbone
from .gemini_mit import GeminiFusionMiT
from .gemini_mit_keys import MiTKeyMap
from .gemini_swin import GeminiFusionSwin
from .gemini_swin_keys import SwinKeyMap
from .key_maps import BackboneKeyMap

__all__ = [
    'BackboneKeyMap', 'GeminiFusionBackbone', 'GeminiFusionMiT',
    'GeminiFusionSwin', 'MiTKeyMap', 'SwinKeyMap'
]

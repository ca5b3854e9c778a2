from .loading import LoadRGBDAnnotations, LoadRGBDImageFromFile
from .padding import RGBDPad
from .photometric import RGBColorJitter, RGBGaussianBlur
from .resize import ResizeShortSideToMultiple, nearest_resize

__all__ = [
    'LoadRGBDImageFromFile', 'LoadRGBDAnnotations', 'RGBColorJitter',
    'RGBGaussianBlur', 'ResizeShortSideToMultiple', 'RGBDPad',
    'nearest_resize'
]

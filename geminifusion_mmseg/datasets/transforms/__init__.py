from .loading import (LoadRGBDAnnotations, LoadRGBDImageFromFile,
                      LoadRGBDImageFromNDArray, encode_depth,
                      read_depth_image)
from .multimodal import (MODALITY_ENCODINGS, LoadMultiModalAnnotations,
                         LoadMultiModalImageFromFile,
                         LoadMultiModalImageFromNDArray, encode_modality,
                         read_image_unchanged)
from .padding import RGBDPad
from .photometric import RGBColorJitter, RGBGaussianBlur
from .resize import ResizeShortSideToMultiple, nearest_resize

__all__ = [
    'LoadRGBDImageFromFile', 'LoadRGBDImageFromNDArray', 'encode_depth',
    'read_depth_image', 'LoadRGBDAnnotations', 'RGBColorJitter',
    'RGBGaussianBlur', 'ResizeShortSideToMultiple', 'RGBDPad',
    'nearest_resize', 'LoadMultiModalImageFromFile',
    'LoadMultiModalAnnotations', 'LoadMultiModalImageFromNDArray',
    'encode_modality', 'read_image_unchanged',
    'MODALITY_ENCODINGS'
]

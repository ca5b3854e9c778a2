from .corruptions import (CORRUPTIONS, DepthHoles, DepthMisregistration,
                          DepthMissing, DepthNoise, DepthQuantisation,
                          ModalityMissing, RandomDepthDegradation, RGBLowLight,
                          RGBMissing, RGBMotionBlur, build_corruption,
                          parse_corruption)
from .hha import DepthToHHA, depth_to_hha
from .loading import (LoadRGBDAnnotations, LoadRGBDImageFromFile,
                      LoadRGBDImageFromNDArray, encode_depth, read_depth_image,
                      replace_non_finite)
from .missing import (RGB_MISSING_VALUE, depth_missing_value,
                      modality_channels, modality_missing_value,
                      sample_modalities)
from .modality_drop import RandomModalityDrop
from .modality_encoding import (DEPTH_ENCODINGS, METRIC_ENCODINGS,
                                ModalityEncoding, parse_encodings)
from .multimodal import (MODALITY_ENCODINGS, LoadMultiModalAnnotations,
                         LoadMultiModalImageFromFile,
                         LoadMultiModalImageFromNDArray, encode_modality,
                         read_image_unchanged)
from .padding import MultiModalPad, RGBDPad
from .photometric import RGBColorJitter, RGBGaussianBlur
from .rescale_crop import RandomRescaleCrop
from .resize import ResizeShortSideToMultiple, nearest_resize
from .size_mismatch import SIZE_MISMATCH_POLICIES

__all__ = [
    'ModalityEncoding', 'parse_encodings', 'DEPTH_ENCODINGS',
    'METRIC_ENCODINGS', 'LoadRGBDImageFromFile', 'LoadRGBDImageFromNDArray',
    'encode_depth', 'read_depth_image', 'replace_non_finite',
    'LoadRGBDAnnotations', 'RGBColorJitter', 'RGBGaussianBlur',
    'ResizeShortSideToMultiple', 'MultiModalPad', 'RGBDPad', 'nearest_resize',
    'LoadMultiModalImageFromFile', 'LoadMultiModalAnnotations',
    'LoadMultiModalImageFromNDArray', 'encode_modality',
    'read_image_unchanged', 'MODALITY_ENCODINGS', 'RandomModalityDrop',
    'depth_missing_value', 'RGB_MISSING_VALUE', 'CORRUPTIONS',
    'build_corruption', 'DepthMissing', 'DepthHoles', 'DepthNoise',
    'DepthQuantisation', 'DepthMisregistration', 'RGBLowLight',
    'RGBMotionBlur', 'RGBMissing', 'RandomDepthDegradation', 'ModalityMissing',
    'parse_corruption', 'modality_channels', 'modality_missing_value',
    'sample_modalities', 'DepthToHHA', 'depth_to_hha', 'RandomRescaleCrop',
    'SIZE_MISMATCH_POLICIES'
]

"""Converters from the official dataset downloads to the layouts the
datasets read (``tools/dataset_converters/``)."""
from .depth2hha import convert_depth_to_hha, read_rotations
from .nyudv2 import convert_nyudv2, parse_frames
from .output import ConverterError, OutputFolder
from .sunrgbd import convert_sunrgbd, decode_depth

__all__ = [
    'ConverterError', 'OutputFolder', 'convert_nyudv2', 'parse_frames',
    'convert_sunrgbd', 'decode_depth', 'convert_depth_to_hha', 'read_rotations'
]

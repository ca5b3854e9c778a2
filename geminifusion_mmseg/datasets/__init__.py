from .nyudv2 import NYUDV2_CLASSES, NYUDV2_PALETTE, NYUDv2Dataset
from .quickstart import (QUICKSTART_CLASSES, QuickstartRGBDDataset,
                         generate_quickstart_dataset)
from .rgbd_dataset import RGBDDataset
from .sunrgbd import SUNRGBDDataset
from .transforms import (LoadRGBDAnnotations, LoadRGBDImageFromFile,
                         ResizeShortSideToMultiple, RGBColorJitter, RGBDPad,
                         RGBGaussianBlur, nearest_resize)

__all__ = [
    'RGBDDataset', 'NYUDv2Dataset', 'SUNRGBDDataset', 'NYUDV2_CLASSES',
    'NYUDV2_PALETTE', 'LoadRGBDImageFromFile', 'LoadRGBDAnnotations',
    'RGBColorJitter', 'RGBGaussianBlur', 'ResizeShortSideToMultiple',
    'RGBDPad', 'nearest_resize', 'QuickstartRGBDDataset', 'QUICKSTART_CLASSES',
    'generate_quickstart_dataset'
]

from .deliver import (DELIVER_CASES, DELIVER_CLASSES, DELIVER_PALETTE,
                      DeLiVERDataset)
from .mfnet import MFNET_CLASSES, MFNET_PALETTE, MFNetDataset
from .modalities import (check_modalities_match, check_modality_names,
                         modality_mean_std, modality_norm_cfg)
from .multimodal_dataset import MultiModalSegDataset
from .multimodal_folder import MultiModalFolderDataset
from .nyudv2 import NYUDV2_CLASSES, NYUDV2_PALETTE, NYUDv2Dataset
from .quickstart import (QUICKSTART_CLASSES, QuickstartRGBDDataset,
                         generate_quickstart_dataset)
from .quickstart_rgbdt import (RGBDT_CLASSES, QuickstartRGBDTDataset,
                               generate_quickstart_rgbdt_dataset)
from .rgbd_dataset import RGBDDataset
from .sunrgbd import SUNRGBDDataset
from .transforms import (LoadMultiModalAnnotations,
                         LoadMultiModalImageFromFile, LoadRGBDAnnotations,
                         LoadRGBDImageFromFile, MultiModalPad,
                         ResizeShortSideToMultiple, RGBColorJitter, RGBDPad,
                         RGBGaussianBlur, nearest_resize)

__all__ = [
    'RGBDDataset', 'NYUDv2Dataset', 'SUNRGBDDataset', 'NYUDV2_CLASSES',
    'NYUDV2_PALETTE', 'LoadRGBDImageFromFile', 'LoadRGBDAnnotations',
    'RGBColorJitter', 'RGBGaussianBlur', 'ResizeShortSideToMultiple',
    'MultiModalPad', 'RGBDPad', 'nearest_resize', 'QuickstartRGBDDataset',
    'QUICKSTART_CLASSES', 'generate_quickstart_dataset',
    'QuickstartRGBDTDataset', 'RGBDT_CLASSES',
    'generate_quickstart_rgbdt_dataset', 'DeLiVERDataset', 'DELIVER_CLASSES',
    'DELIVER_PALETTE', 'DELIVER_CASES', 'MFNetDataset', 'MFNET_CLASSES',
    'MFNET_PALETTE', 'MultiModalSegDataset', 'MultiModalFolderDataset',
    'LoadMultiModalImageFromFile', 'LoadMultiModalAnnotations',
    'check_modalities_match', 'check_modality_names', 'modality_mean_std',
    'modality_norm_cfg'
]

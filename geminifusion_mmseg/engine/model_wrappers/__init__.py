from .cpu_distributed import CPUCompatibleDistributedDataParallel
from .rgbd_seg_tta import MultiModalSegTTAModel, RGBDSegTTAModel

__all__ = [
    'CPUCompatibleDistributedDataParallel', 'MultiModalSegTTAModel',
    'RGBDSegTTAModel'
]

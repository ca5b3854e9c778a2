from .cpu_distributed import CPUCompatibleDistributedDataParallel
from .rgbd_seg_tta import RGBDSegTTAModel

__all__ = ['CPUCompatibleDistributedDataParallel', 'RGBDSegTTAModel']

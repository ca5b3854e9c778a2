from .cpu_distributed import CPUCompatibleDistributedDataParallel

__all__ = ['CPUCompatibleDistributedDataParallel']

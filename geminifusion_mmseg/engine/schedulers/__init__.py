from .staged_poly_lr import StagedPolyLR, staged_poly_factor
from .warmup_poly_lr import WarmupPolyLR, warmup_poly_factor

__all__ = [
    'StagedPolyLR', 'staged_poly_factor', 'WarmupPolyLR', 'warmup_poly_factor'
]

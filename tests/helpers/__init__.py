"""Test helpers shared by the test modules (synthetic data sets ...)."""
from .synthetic_rgbd import (IGNORE, block_labels, border_crop_box,
                             class_color, depth_step, depth_to_label,
                             label_to_depth, make_nyudv2_dformer,
                             make_nyudv2_tokenfusion, make_sunrgbd_dformer,
                             write_list)

__all__ = [
    'IGNORE', 'block_labels', 'border_crop_box', 'class_color', 'depth_step',
    'depth_to_label', 'label_to_depth', 'make_nyudv2_tokenfusion',
    'make_sunrgbd_dformer', 'make_nyudv2_dformer', 'write_list'
]

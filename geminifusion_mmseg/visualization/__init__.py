from .rgbd_panel import (colorize_depth, colorize_label, draw_legend,
                         make_multimodal_panel, make_rgbd_panel, overlay_label,
                         overlay_with_legend, present_classes)

__all__ = [
    'colorize_depth', 'colorize_label', 'make_rgbd_panel',
    'make_multimodal_panel', 'overlay_label', 'draw_legend',
    'overlay_with_legend', 'present_classes'
]

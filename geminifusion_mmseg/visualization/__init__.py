from .rgbd_panel import (colorize_depth, colorize_label, draw_legend,
                         make_rgbd_panel, overlay_label, overlay_with_legend,
                         present_classes)

__all__ = [
    'colorize_depth', 'colorize_label', 'make_rgbd_panel', 'overlay_label',
    'draw_legend', 'overlay_with_legend', 'present_classes'
]

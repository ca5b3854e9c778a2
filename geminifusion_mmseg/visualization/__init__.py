from .rgbd_panel import (colorize_depth, colorize_label, make_rgbd_panel,
                         overlay_label)

__all__ = [
    'colorize_depth', 'colorize_label', 'make_rgbd_panel', 'overlay_label'
]

"""Side-by-side images of RGB-D samples: RGB | depth | label maps."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

TITLE_HEIGHT = 22


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """Colour-map a depth image for viewing.

    Args:
        depth (np.ndarray): (H, W) or (H, W, C) (the first channel is used),
            any dtype; scaled by its own min/max over finite values.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim == 3:
        d = d[..., 0]
    finite = np.isfinite(d)
    lo, hi = (d[finite].min(), d[finite].max()) if finite.any() else (0, 1)
    scaled = np.zeros_like(d) if hi <= lo else (d - lo) / (hi - lo)
    scaled = np.where(finite, scaled, 0)
    gray = np.clip(scaled * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_JET)[..., ::-1].copy()


def colorize_label(label: np.ndarray, palette: Sequence[Sequence[int]],
                   ignore_index: int = 255) -> np.ndarray:
    """Paint a label map with the palette; ``ignore_index`` stays black.

    Args:
        label (np.ndarray): (H, W) integer class indices.
        palette: One RGB triple per class.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    label = np.asarray(label).astype(np.int64)
    lut = np.zeros((max(256, len(palette)), 3), dtype=np.uint8)
    lut[:len(palette)] = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    lut[ignore_index] = 0
    return lut[np.clip(label, 0, len(lut) - 1)]


def overlay_label(rgb: np.ndarray, label: np.ndarray,
                  palette: Sequence[Sequence[int]],
                  opacity: float = 0.5) -> np.ndarray:
    """Blend a painted label map over an RGB image: (H, W, 3) uint8."""
    painted = colorize_label(label, palette).astype(np.float32)
    out = (1 - opacity) * np.asarray(rgb, np.float32) + opacity * painted
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    band = np.full((TITLE_HEIGHT, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(band, title, (4, TITLE_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def make_rgbd_panel(rgb: np.ndarray,
                    depth: np.ndarray,
                    label_maps: Sequence[Tuple[str, np.ndarray]] = (),
                    palette: Optional[Sequence[Sequence[int]]] = None,
                    ignore_index: int = 255) -> np.ndarray:
    """RGB | depth | each label map, side by side with titles.

    Everything is resized to the size of the first label map (or of the
    RGB image if there is none): images bilinearly, labels nearest.

    Args:
        rgb (np.ndarray): (H, W, 3) RGB, values 0..255.
        depth (np.ndarray): (H, W) or (H, W, C) depth in any unit.
        label_maps: (title, (h, w) class-index map) pairs, e.g.
            ``[('ground truth', gt), ('prediction', pred)]``.
        palette: RGB triple per class (needed when label_maps is given).

    Returns:
        np.ndarray: (h + TITLE_HEIGHT, (2 + len(label_maps)) * w, 3) uint8
        RGB.
    """
    h, w = (label_maps[0][1].shape[:2] if label_maps else rgb.shape[:2])

    def resize(img, interpolation):
        return cv2.resize(img, (w, h), interpolation=interpolation)

    tiles = [
        _titled(
            resize(np.clip(np.asarray(rgb, np.float32), 0, 255).astype(
                np.uint8), cv2.INTER_LINEAR), 'rgb'),
        _titled(resize(colorize_depth(depth), cv2.INTER_LINEAR), 'depth'),
    ]
    for title, label in label_maps:
        painted = colorize_label(label, palette, ignore_index)
        tiles.append(_titled(resize(painted, cv2.INTER_NEAREST), title))
    return np.concatenate(tiles, axis=1)

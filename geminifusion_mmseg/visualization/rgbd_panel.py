"""Side-by-side images of multi-modal samples: RGB | depth | ... | label
maps; class legends."""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

TITLE_HEIGHT = 22


def _normalise(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Map ``x`` to 0..255 (uint8) using its range over ``valid`` pixels."""
    out = np.zeros(x.shape, dtype=np.uint8)
    if valid.any():
        lo, hi = float(x[valid].min()), float(x[valid].max())
        scale = 255. / (hi - lo) if hi > lo else 0.
        out[valid] = np.clip((x[valid] - lo) * scale, 0, 255).astype(np.uint8)
    return out


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """Colour-map a depth image for viewing.

    Args:
        depth (np.ndarray): (H, W) or (H, W, C), any unit or dtype. A
            single-valued map (C = 1, or C channels all equal) is scaled by
            its own min/max and colour-mapped, with 0 (missing depth) black;
            a 3-channel encoding such as HHA is shown channel-normalised.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim == 3 and d.shape[2] >= 3 and not all(
            np.array_equal(d[..., 0], d[..., c]) for c in range(1, 3)):
        return np.stack(
            [_normalise(d[..., c], np.isfinite(d[..., c])) for c in range(3)],
            axis=-1)
    if d.ndim == 3:
        d = d[..., 0]
    valid = np.isfinite(d) & (d > 0)
    colormap = getattr(cv2, 'COLORMAP_TURBO', cv2.COLORMAP_JET)
    view = cv2.applyColorMap(_normalise(d, valid), colormap)[..., ::-1].copy()
    view[~valid] = 0
    return view


def colorize_label(label: np.ndarray,
                   palette: Sequence[Sequence[int]],
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


def overlay_label(rgb: np.ndarray,
                  label: np.ndarray,
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
            resize(
                np.clip(np.asarray(rgb, np.float32), 0, 255).astype(np.uint8),
                cv2.INTER_LINEAR), 'rgb'),
        _titled(resize(colorize_depth(depth), cv2.INTER_LINEAR), 'depth'),
    ]
    for title, label in label_maps:
        painted = colorize_label(label, palette, ignore_index)
        tiles.append(_titled(resize(painted, cv2.INTER_NEAREST), title))
    return np.concatenate(tiles, axis=1)


def make_multimodal_panel(img: np.ndarray,
                          modalities: Sequence[str],
                          label_maps: Sequence[Tuple[str, np.ndarray]] = (),
                          palette: Optional[Sequence[Sequence[int]]] = None,
                          ignore_index: int = 255) -> np.ndarray:
    """One column per modality, then each label map, with titles.

    ``RGB | depth | event | ... | label``: channels ``3*i .. 3*i+2`` of
    ``img`` are modality ``i`` (the layout of
    :class:`LoadMultiModalImageFromFile`); RGB is drawn as is, every other
    modality by :func:`colorize_depth` (a single-valued map colour-mapped,
    a 3-channel encoding channel-normalised) under its name. For
    ``modalities=('rgb', 'depth')`` the result is that of
    :func:`make_rgbd_panel`.

    Args:
        img (np.ndarray): (H, W, 3K) stacked modalities, RGB first.
        modalities (Sequence[str]): The K names, in channel order.
        label_maps: (title, (h, w) class-index map) pairs.
        palette: RGB triple per class (needed when label_maps is given).

    Returns:
        np.ndarray: (h + TITLE_HEIGHT, (K + len(label_maps)) * w, 3) uint8
        RGB.
    """
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 * len(modalities):
        raise ValueError(
            f'make_multimodal_panel: the image has shape {img.shape}, but '
            f'the modalities {list(modalities)} need '
            f'{3 * len(modalities)} channels.')
    h, w = (label_maps[0][1].shape[:2] if label_maps else img.shape[:2])

    def resize(x, interpolation):
        return cv2.resize(x, (w, h), interpolation=interpolation)

    tiles = []
    for i, name in enumerate(modalities):
        x = img[..., 3 * i:3 * i + 3]
        if i == 0:
            view = np.clip(np.asarray(x, np.float32), 0, 255).astype(np.uint8)
        else:
            view = colorize_depth(x)
        tiles.append(_titled(resize(view, cv2.INTER_LINEAR), str(name)))
    for title, label in label_maps:
        painted = colorize_label(label, palette, ignore_index)
        tiles.append(_titled(resize(painted, cv2.INTER_NEAREST), title))
    return np.concatenate(tiles, axis=1)


LEGEND_ROW = 20


def present_classes(label: np.ndarray,
                    num_classes: int,
                    ignore_index: int = 255) -> List[int]:
    """Class ids present in a label map, ascending, without
    ``ignore_index`` and ids outside ``0..num_classes-1``."""
    ids = np.unique(np.asarray(label))
    return [int(i) for i in ids if 0 <= i < num_classes and i != ignore_index]


def draw_legend(class_ids: Sequence[int],
                classes: Sequence[str],
                palette: Sequence[Sequence[int]],
                min_height: int = 0) -> np.ndarray:
    """A legend: one row per class, a colour swatch and the class name.

    Args:
        class_ids: Classes to list, in order.
        classes: Name per class id.
        palette: RGB triple per class id.
        min_height (int): Pad the legend (white) to at least this height.

    Returns:
        np.ndarray: (max(min_height, rows * LEGEND_ROW + 8), w, 3) uint8
        RGB, white background.
    """
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    swatch = LEGEND_ROW - 6
    names = [str(classes[i]) for i in class_ids]
    text_w = max([cv2.getTextSize(n, font, scale, thick)[0][0]
                  for n in names] + [0])
    width = 4 + swatch + 6 + text_w + 6
    height = max(min_height, len(names) * LEGEND_ROW + 8)
    legend = np.full((height, width, 3), 255, dtype=np.uint8)
    for row, (i, name) in enumerate(zip(class_ids, names)):
        y = 4 + row * LEGEND_ROW
        colour = tuple(int(c) for c in palette[i])
        cv2.rectangle(legend, (4, y + 3), (4 + swatch, y + 3 + swatch), colour,
                      -1)
        cv2.rectangle(legend, (4, y + 3), (4 + swatch, y + 3 + swatch),
                      (0, 0, 0), 1)
        cv2.putText(legend, name, (4 + swatch + 6, y + LEGEND_ROW - 5), font,
                    scale, (0, 0, 0), thick, cv2.LINE_AA)
    return legend


def overlay_with_legend(rgb: np.ndarray,
                        label: np.ndarray,
                        classes: Sequence[str],
                        palette: Sequence[Sequence[int]],
                        opacity: float = 0.5,
                        ignore_index: int = 255) -> np.ndarray:
    """The label map over the image, with a legend of the classes present
    on its right (the image is padded white below if the legend is taller).

    Args:
        rgb (np.ndarray): (H, W, 3) RGB, 0..255.
        label (np.ndarray): (H, W) class ids.
        classes: Name per class id.
        palette: RGB triple per class id.
        opacity (float): Of the painted labels, 0..1.

    Returns:
        np.ndarray: (max(H, legend height), W + legend width, 3) uint8 RGB.
    """
    shown = overlay_label(rgb, label, palette, opacity)
    ids = present_classes(label, min(len(classes), len(palette)), ignore_index)
    legend = draw_legend(ids, classes, palette, min_height=shown.shape[0])
    if legend.shape[0] > shown.shape[0]:
        pad = np.full(
            (legend.shape[0] - shown.shape[0], ) + shown.shape[1:],
            255,
            dtype=np.uint8)
        shown = np.concatenate([shown, pad], axis=0)
    return np.concatenate([shown, legend], axis=1)

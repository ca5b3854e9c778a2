"""Photometric augmentations that touch only the RGB channels."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.registry import TRANSFORMS

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _gray(rgb: np.ndarray) -> np.ndarray:
    """Luma of an (H, W, 3) float32 RGB image, shape (H, W, 1)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    gray = (
        np.float32(_GRAY_WEIGHTS[0]) * r + np.float32(_GRAY_WEIGHTS[1]) * g +
        np.float32(_GRAY_WEIGHTS[2]) * b)
    return gray[..., None]


def _check_range(name: str, value) -> Optional[Tuple[float, float]]:
    if value is None:
        return None
    if len(value) != 2 or not 0 <= value[0] <= value[1]:
        raise ValueError(f'{name} must be None or (min, max) with '
                         f'0 <= min <= max, got {value!r}.')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class RGBColorJitter(BaseTransform):
    """Colour jitter of the RGB channels (0-2) of a multi-modal image.

    With probability ``prob``: brightness, then contrast, then saturation,
    each with its own factor drawn uniformly from its range, each step
    clipped to ``clip_range`` -- the order and formulas of torchvision's
    ``adjust_brightness`` / ``adjust_contrast`` / ``adjust_saturation``
    used by the GeminiFusion release (``RandomColorJitter(p=0.2)``):

    - brightness ``b``: ``x = clip(b * x)``
    - contrast ``c``: ``x = clip(c * x + (1 - c) * mean(gray(x)))`` (one
      mean over the image)
    - saturation ``s``: ``x = clip(s * x + (1 - s) * gray(x))``

    with ``gray = 0.2989 R + 0.587 G + 0.114 B``. Channels 3 and up (depth)
    are never touched (bit-identical).

    Note:
        The release applies these functions to float images holding 0..255,
        for which torchvision clips to (0, 1), not (0, 255): its jittered
        RGB ends inside [0, 1], i.e. nearly black after normalisation (in
        effect, RGB is blanked for ``prob`` of the training samples). The
        default here is the intended colour jitter (``clip_range=(0, 255)``);
        ``clip_range=(0, 1)`` reproduces the release bit for bit up to
        float rounding.

        The DeLiVER / MFNet code line jitters the uint8 tensors of
        ``torchvision.io.read_image`` instead: torchvision clamps them to
        255 (no blackout) and casts every step back to uint8, i.e.
        truncates; ``uint8=True`` (with ``clip_range=(0, 255)``) does the
        same, also truncating the grey image of contrast and saturation
        as ``rgb_to_grayscale`` does for uint8.

    Required Keys:

    - img (np.float32, (H, W, C), C >= 3, channels 0-2 RGB 0..255)

    Modified Keys:

    - img (channels 0-2 only)

    Args:
        prob (float): Probability of applying the jitter. Defaults to 0.2.
        brightness (tuple[float, float], optional): Range of the brightness
            factor; None skips it. Defaults to (0.5, 1.5).
        contrast (tuple[float, float], optional): Range of the contrast
            factor; None skips it. Defaults to (0.5, 1.5).
        saturation (tuple[float, float], optional): Range of the saturation
            factor; None skips it. Defaults to (0.5, 1.5).
        clip_range (tuple[float, float]): Values are clipped to this range
            after every step. Defaults to (0., 255.).
        uint8 (bool): Truncate to integers after every step and in the
            grey images, like torchvision on a uint8 tensor (see the
            note). Defaults to False.
    """

    def __init__(self,
                 prob: float = 0.2,
                 brightness: Optional[Sequence[float]] = (0.5, 1.5),
                 contrast: Optional[Sequence[float]] = (0.5, 1.5),
                 saturation: Optional[Sequence[float]] = (0.5, 1.5),
                 clip_range: Sequence[float] = (0., 255.),
                 uint8: bool = False) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        self.prob = prob
        self.brightness = _check_range('brightness', brightness)
        self.contrast = _check_range('contrast', contrast)
        self.saturation = _check_range('saturation', saturation)
        if len(clip_range) != 2 or clip_range[0] >= clip_range[1]:
            raise ValueError(f'clip_range must be (min, max), got '
                             f'{clip_range!r}.')
        self.clip_range = (float(clip_range[0]), float(clip_range[1]))
        self.uint8 = bool(uint8)
        if self.uint8 and self.clip_range != (0., 255.):
            raise ValueError('uint8=True models uint8 tensors, whose range '
                             f'is (0, 255); got clip_range={clip_range!r}.')

    @cache_randomness
    def _random_factors(self) -> Optional[Tuple[Optional[float], ...]]:
        """Draw (brightness, contrast, saturation) or None (no jitter)."""
        if np.random.rand() >= self.prob:
            return None
        return tuple(
            None if rng is None else float(np.random.uniform(rng[0], rng[1]))
            for rng in (self.brightness, self.contrast, self.saturation))

    def _clip(self, x: np.ndarray) -> np.ndarray:
        x = np.clip(x, self.clip_range[0], self.clip_range[1], out=x)
        return np.floor(x, out=x) if self.uint8 else x

    def _gray(self, rgb: np.ndarray) -> np.ndarray:
        gray = _gray(rgb)
        return np.floor(gray, out=gray) if self.uint8 else gray

    def transform(self, results: dict) -> dict:
        """Jitter ``img[..., :3]``.

        Args:
            results (dict): Result dict with ``img``.

        Returns:
            dict: The dict with the RGB channels of ``img`` jittered.
        """
        factors = self._random_factors()
        if factors is None:
            return results
        img = results['img']
        if img.ndim != 3 or img.shape[2] < 3:
            raise ValueError(f'RGBColorJitter expects an (H, W, C>=3) image, '
                             f'got shape {img.shape}.')
        if img.dtype != np.float32:
            img = img.astype(np.float32)
        rgb = np.ascontiguousarray(img[..., :3])
        brightness, contrast, saturation = factors
        if brightness is not None:
            rgb = self._clip(rgb * np.float32(brightness))
        if contrast is not None:
            mean = np.float32(self._gray(rgb).mean(dtype=np.float64))
            rgb = self._clip(
                np.float32(contrast) * rgb + np.float32(1. - contrast) * mean)
        if saturation is not None:
            rgb = self._clip(
                np.float32(saturation) * rgb +
                np.float32(1. - saturation) * self._gray(rgb))
        img[..., :3] = rgb
        results['img'] = img
        return results

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        repr_str += f'(prob={self.prob}, brightness={self.brightness}, '
        repr_str += f'contrast={self.contrast}, '
        repr_str += f'saturation={self.saturation}, '
        repr_str += f'clip_range={self.clip_range}'
        if self.uint8:
            repr_str += ', uint8=True'
        repr_str += ')'
        return repr_str


@TRANSFORMS.register_module()
class RGBGaussianBlur(BaseTransform):
    """Gaussian blur of the RGB channels (0-2) of a multi-modal image.

    With probability ``prob`` the RGB channels are blurred with a
    ``kernel_size`` x ``kernel_size`` Gaussian, sigma
    ``0.15 * kernel_size + 0.35`` (0.8 for 3x3) by default and reflected
    borders (``BORDER_REFLECT_101``): torchvision's ``gaussian_blur`` with
    its default sigma, as the GeminiFusion release
    (``RandomGaussianBlur((3, 3), p=0.2)``). Channels 3 and up (depth) are
    never touched.

    Required Keys:

    - img (np.float32, (H, W, C), C >= 3)

    Modified Keys:

    - img (channels 0-2 only)

    Args:
        prob (float): Probability of blurring. Defaults to 0.2.
        kernel_size (int): Odd kernel size. Defaults to 3.
        sigma (float, optional): Standard deviation; None uses
            ``0.15 * kernel_size + 0.35``. Defaults to None.
        uint8 (bool): Round the blurred RGB to integers, as torchvision
            does for a uint8 tensor (the DeLiVER / MFNet code line).
            Defaults to False.
    """

    def __init__(self,
                 prob: float = 0.2,
                 kernel_size: int = 3,
                 sigma: Optional[float] = None,
                 uint8: bool = False) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}.')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f'kernel_size must be a positive odd int, got {kernel_size}.')
        self.prob = prob
        self.kernel_size = int(kernel_size)
        # An explicit sigma > 0 also stops OpenCV from using its fixed
        # small-kernel table ([0.25, 0.5, 0.25] for 3x3).
        self.sigma = float(sigma) if sigma is not None else \
            0.15 * self.kernel_size + 0.35
        if self.sigma <= 0:
            raise ValueError(f'sigma must be > 0, got {sigma}.')
        self.uint8 = bool(uint8)

    @cache_randomness
    def _do_blur(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        """Blur ``img[..., :3]``.

        Args:
            results (dict): Result dict with ``img``.

        Returns:
            dict: The dict with the RGB channels of ``img`` blurred.
        """
        if not self._do_blur():
            return results
        img = results['img']
        if img.ndim != 3 or img.shape[2] < 3:
            raise ValueError(f'RGBGaussianBlur expects an (H, W, C>=3) '
                             f'image, got shape {img.shape}.')
        if img.dtype != np.float32:
            img = img.astype(np.float32)
        rgb = np.ascontiguousarray(img[..., :3])
        blurred = cv2.GaussianBlur(
            rgb, (self.kernel_size, self.kernel_size),
            sigmaX=self.sigma,
            sigmaY=self.sigma,
            borderType=cv2.BORDER_REFLECT_101)
        img[..., :3] = np.round(blurred) if self.uint8 else blurred
        results['img'] = img
        return results

    def __repr__(self) -> str:
        repr_str = self.__class__.__name__
        repr_str += f'(prob={self.prob}, kernel_size={self.kernel_size}, '
        repr_str += f'sigma={self.sigma}'
        if self.uint8:
            repr_str += ', uint8=True'
        repr_str += ')'
        return repr_str

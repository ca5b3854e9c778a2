"""Modality dropout: train a fused model to survive a dead sensor."""
from typing import Optional, Sequence

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .missing import (DEPTH_CHANNEL_RANGE, DEPTH_CHANNELS, RGB_CHANNELS,
                      RGB_MISSING_VALUE, check_depth_encoding,
                      check_rgbd_image, depth_missing_value)
from .seeding import sample_rng
from .size_mismatch import settle_unaligned


@TRANSFORMS.register_module()
class RandomModalityDrop(BaseTransform):
    """Per sample, replace RGB or depth by "no measurement".

    One uniform draw ``u`` per sample: ``u < rgb_prob`` blanks the RGB
    channels (0-2) to 0 (black), ``rgb_prob <= u < rgb_prob + depth_prob``
    sets the depth channels (3-5) to the encoding's missing value (see
    :mod:`~geminifusion_mmseg.datasets.transforms.missing`; 0 for the
    'raw' encoding, as a sensor stores it). Never both. The label is not
    touched: the model must still segment the scene from the modality it
    has, which is what it will face when a sensor fails at test time
    (``DepthMissing`` / ``RGBMissing``, ``inference_model(depth=None)``).

    Put it after the geometric transforms (any place after the loader
    works; after ``MultiModalPad`` the padded border is also blanked, which is
    harmless; before a resize, a dropped depth stored at another size than
    RGB stays dropped: see
    :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`).

    Required Keys:

    - img (np.float32, (H, W, 6))
    - img_path / sample_idx (only with ``seed``)

    Modified Keys:

    - img

    Added Keys:

    - dropped_modality (str: 'rgb', 'depth' or 'none')

    Args:
        rgb_prob (float): Probability of dropping RGB. Defaults to 0.15.
        depth_prob (float): Probability of dropping depth. Defaults to 0.15.
        depth_encoding (str): The loader's ``depth_encoding`` ('raw',
            'scale', 'clip', 'hha'). Defaults to 'raw'.
        depth_scale (float): The loader's ``depth_scale`` ('scale').
        depth_range (tuple[float, float], optional): The loader's
            ``depth_range`` ('clip').
        seed (int, optional): None (training): a fresh draw every time,
            from NumPy's global generator (seeded per worker by mmengine).
            An int makes the choice a fixed function of the sample
            (``img_path``), e.g. to evaluate on a fixed mix.
            Defaults to None.
    """

    def __init__(self,
                 rgb_prob: float = 0.15,
                 depth_prob: float = 0.15,
                 depth_encoding: str = 'raw',
                 depth_scale: float = 1.0,
                 depth_range: Optional[Sequence[float]] = None,
                 seed: Optional[int] = None) -> None:
        for name, p in (('rgb_prob', rgb_prob), ('depth_prob', depth_prob)):
            if not 0 <= p <= 1:
                raise ValueError(
                    f'RandomModalityDrop: {name} must be in [0, 1], got {p}.')
        if rgb_prob + depth_prob > 1 + 1e-9:
            raise ValueError(
                'RandomModalityDrop: rgb_prob + depth_prob must be <= 1 '
                f'(at most one modality is dropped), got {rgb_prob} + '
                f'{depth_prob}.')
        check_depth_encoding(depth_encoding, depth_range, 'RandomModalityDrop')
        self.rgb_prob = float(rgb_prob)
        self.depth_prob = float(depth_prob)
        self.depth_encoding = depth_encoding
        self.depth_scale = float(depth_scale)
        self.depth_range = None if depth_range is None else tuple(
            float(v) for v in depth_range)
        self.seed = seed
        self.depth_missing = depth_missing_value(depth_encoding,
                                                 self.depth_scale,
                                                 self.depth_range)

    def transform(self, results: dict) -> dict:
        """Drop at most one modality of ``results['img']``.

        Args:
            results (dict): Result dict with ``img`` (H, W, 6).

        Returns:
            dict: The dict with ``img`` possibly blanked in channels 0-2 or
            3-5, and ``dropped_modality``.
        """
        img = results['img']
        check_rgbd_image(img, 'RandomModalityDrop')
        u = sample_rng(results, self.seed, 'RandomModalityDrop').random()
        if u < self.rgb_prob:
            dropped = 'rgb'
            img[..., RGB_CHANNELS] = RGB_MISSING_VALUE
        elif u < self.rgb_prob + self.depth_prob:
            dropped = 'depth'
            # keep the drop over a depth of another size than RGB
            settle_unaligned(results, DEPTH_CHANNEL_RANGE)
            img[..., DEPTH_CHANNELS] = self.depth_missing
        else:
            dropped = 'none'
        results['img'] = img
        results['dropped_modality'] = dropped
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(rgb_prob={self.rgb_prob}, '
                f'depth_prob={self.depth_prob}, '
                f"depth_encoding='{self.depth_encoding}', "
                f'depth_missing={self.depth_missing}, seed={self.seed})')

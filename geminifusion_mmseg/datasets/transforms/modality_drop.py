"""Modality dropout: train a fused model to survive a dead sensor."""
from typing import Dict, Optional, Sequence

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .missing import (channel_range, check_depth_encoding, modality_channels,
                      sample_encoding)
from .modality_encoding import ModalityEncoding
from .seeding import sample_rng
from .size_mismatch import settle_unaligned


@TRANSFORMS.register_module()
class RandomModalityDrop(BaseTransform):
    """Per sample, replace at most one modality by "no measurement".

    One uniform draw ``u`` per sample against the cumulative probabilities
    of ``probs`` in its order: with ``probs=dict(rgb=0.1, depth=0.1,
    thermal=0.1)``, ``u < 0.1`` drops RGB, ``0.1 <= u < 0.2`` depth,
    ``0.2 <= u < 0.3`` thermal, else nothing. Never two. A dropped modality
    gets its encoding's missing value (see
    :mod:`~geminifusion_mmseg.datasets.transforms.missing`): RGB black
    (0); depth the missing value of ``depth_encoding`` (0 for 'raw', as a
    sensor stores it); any other modality the missing value of the
    loader's encoding of it (``results['modality_encodings']``; 0 for
    thermal, event and LiDAR images as stored). The label is not
    touched: the model must still segment the scene from the modalities
    it has, which is what it will face when a sensor fails at test time
    (``DepthMissing`` / ``RGBMissing`` / ``<modality>_missing``,
    ``inference_model(depth=None)``).

    The RGB-D arguments ``rgb_prob`` / ``depth_prob`` are
    ``probs=dict(rgb=rgb_prob, depth=depth_prob)`` (same draws, same
    result); give either them or ``probs``.

    Put it after the geometric transforms (any place after the loader
    works; after ``MultiModalPad`` the padded border is also blanked, which
    is harmless; before a resize, a dropped modality stored at another size
    than RGB stays dropped: see
    :mod:`~geminifusion_mmseg.datasets.transforms.size_mismatch`).

    Required Keys:

    - img (np.float32, (H, W, 3K); (H, W, 6) without ``modalities``)
    - modalities, modality_encodings (written by the loaders)
    - img_path / sample_idx (only with ``seed``)

    Modified Keys:

    - img

    Added Keys:

    - dropped_modality (str: the dropped modality's name or 'none')

    Args:
        rgb_prob (float, optional): Probability of dropping RGB. Defaults
            to 0.15 when ``probs`` is not given.
        depth_prob (float, optional): Probability of dropping depth.
            Defaults to 0.15 when ``probs`` is not given.
        probs (dict, optional): Probability per modality name, e.g.
            ``dict(depth=0.1, thermal=0.1)``; the sum must be <= 1. Every
            name must be a modality of the samples (else a KeyError names
            it and the sample's modalities). Defaults to None.
        depth_encoding (str): The loader's ``depth_encoding`` ('raw',
            'scale', 'clip', 'hha') of the 'depth' modality. Defaults to
            'raw'.
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
                 rgb_prob: Optional[float] = None,
                 depth_prob: Optional[float] = None,
                 depth_encoding: str = 'raw',
                 depth_scale: float = 1.0,
                 depth_range: Optional[Sequence[float]] = None,
                 seed: Optional[int] = None,
                 probs: Optional[Dict[str, float]] = None) -> None:
        owner = 'RandomModalityDrop'
        if probs is None:
            probs = dict(
                rgb=0.15 if rgb_prob is None else rgb_prob,
                depth=0.15 if depth_prob is None else depth_prob)
            what = 'rgb_prob + depth_prob'
            arg = '{}_prob'
        else:
            if rgb_prob is not None or depth_prob is not None:
                raise ValueError(
                    f'{owner}: give either probs or rgb_prob / depth_prob, '
                    f'not both (got probs={probs!r}, rgb_prob={rgb_prob}, '
                    f'depth_prob={depth_prob}).')
            if not isinstance(probs, dict) or not probs:
                raise ValueError(f'{owner}: probs must be a non-empty dict '
                                 "name -> probability, e.g. dict(depth=0.1, "
                                 f"thermal=0.1), got {probs!r}.")
            what = 'the sum of probs'
            arg = 'probs[{!r}]'
        for name, p in probs.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f'{owner}: probs keys must be modality '
                                 f'names, got {name!r}.')
            if not 0 <= p <= 1:
                raise ValueError(f'{owner}: {arg.format(name)} must be in '
                                 f'[0, 1], got {p}.')
        if sum(probs.values()) > 1 + 1e-9:
            raise ValueError(
                f'{owner}: {what} must be <= 1 (at most one modality is '
                f'dropped), got ' + ' + '.join(str(p)
                                               for p in probs.values()) + '.')
        check_depth_encoding(depth_encoding, depth_range, owner)
        self.probs = {k: float(v) for k, v in probs.items()}
        self.rgb_prob = self.probs.get('rgb', 0.0)
        self.depth_prob = self.probs.get('depth', 0.0)
        self.depth_encoding = depth_encoding
        self.depth_scale = float(depth_scale)
        self.depth_range = None if depth_range is None else tuple(
            float(v) for v in depth_range)
        self.seed = seed
        #: the encoding of 'depth' (the depth_* arguments)
        self.depth_modality_encoding = ModalityEncoding(
            depth_encoding, self.depth_scale, self.depth_range)
        self.depth_missing = self.depth_modality_encoding.missing_value()

    def modality_encoding(self, results: dict, name: str) -> ModalityEncoding:
        """The encoding of modality ``name`` in the sample: for 'depth'
        the ``depth_*`` arguments; any other modality the loader's
        (``results['modality_encodings']``), else its default
        (:meth:`ModalityEncoding.default_for`; 'rgb' is always 'rgb')."""
        if name == 'depth':
            return self.depth_modality_encoding
        enc = sample_encoding(results, name)
        return ModalityEncoding.default_for(name) if enc is None else \
            ModalityEncoding.from_dict(enc)

    def missing_value(self, results: dict, name: str) -> float:
        """The value modality ``name`` gets when dropped: its encoding's
        :meth:`~ModalityEncoding.missing_value` (RGB black, 0)."""
        return self.modality_encoding(results, name).missing_value()

    def transform(self, results: dict) -> dict:
        """Drop at most one modality of ``results['img']``.

        Args:
            results (dict): Result dict with ``img`` (H, W, 3K).

        Returns:
            dict: The dict with ``img`` possibly blanked in the channels of
            one modality, and ``dropped_modality``.
        """
        owner = type(self).__name__
        # check every name first: a wrong name fails on the first sample
        channels = {
            name: modality_channels(results, name, owner)
            for name in self.probs
        }
        img = results['img']
        u = sample_rng(results, self.seed, 'RandomModalityDrop').random()
        dropped = 'none'
        bound = 0.0
        for name, p in self.probs.items():
            bound += p
            if u < bound:
                dropped = name
                break
        if dropped != 'none':
            if dropped != 'rgb':
                # keep the drop over a modality of another size than RGB
                settle_unaligned(results, channel_range(channels[dropped]))
            img[..., channels[dropped]] = self.missing_value(results, dropped)
        results['img'] = img
        results['dropped_modality'] = dropped
        return results

    def __repr__(self) -> str:
        if set(self.probs) == {'rgb', 'depth'}:
            probs = (f'rgb_prob={self.rgb_prob}, '
                     f'depth_prob={self.depth_prob}')
        else:
            probs = f'probs={self.probs}'
        return (f'{self.__class__.__name__}({probs}, '
                f"depth_encoding='{self.depth_encoding}', "
                f'depth_missing={self.depth_missing}, seed={self.seed})')

"""What both GeminiFusion backbones share: the fusion configuration, the
initialisation flow and the versioned state-dict keys."""
from typing import List, Optional, Sequence

from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..utils.pretrained_loading import is_pretrained_cfg, load_pretrained
from .key_maps import BackboneKeyMap

__all__ = [
    'GeminiFusionBackbone', 'DEFAULT_FUSION_CFG', 'resolve_fusion_cfg',
    'block_fusion_cfgs'
]

#: The published fusion layer: GeminiFusion with 8 heads in every block.
DEFAULT_FUSION_CFG = dict(type='GeminiFusion', num_heads=8)


def resolve_fusion_cfg(fusion_cfg, fusion_num_heads: Optional[int],
                       owner: str) -> Optional[dict]:
    """The fusion config of a backbone.

    Args:
        fusion_cfg (dict | None): A registered fusion layer's config
            (:func:`build_fusion_layer`); None: no fusion.
        fusion_num_heads (int, optional): The former argument (before
            ``fusion_cfg``): sets ``num_heads`` of the fusion config.
        owner (str): Backbone name for messages.

    Returns:
        dict | None: A copy of the config, or None.
    """
    if fusion_cfg is not None and not isinstance(fusion_cfg, dict):
        raise ValueError(f'{owner}: fusion_cfg must be None or a dict such '
                         "as dict(type='GeminiFusion', num_heads=8), got "
                         f'{fusion_cfg!r}')
    cfg = None if fusion_cfg is None else dict(fusion_cfg)
    if fusion_num_heads is not None:
        if cfg is None:
            raise ValueError(f'{owner}: fusion_num_heads={fusion_num_heads} '
                             'given with fusion_cfg=None (no fusion)')
        print_log(
            f'{owner}: fusion_num_heads is deprecated; use '
            f'fusion_cfg=dict(type={cfg.get("type")!r}, '
            f'num_heads={fusion_num_heads})',
            logger='current')
        cfg['num_heads'] = fusion_num_heads
    return cfg


def block_fusion_cfgs(fusion_cfg: Optional[dict], depths: Sequence[int],
                      fusion_last_k: Optional[int],
                      owner: str) -> List[List[Optional[dict]]]:
    """The fusion config of every block: fusion only in the last
    ``fusion_last_k`` blocks, counted over all stages from the end (the
    paper's Table 8 "fuse in the last k blocks").

    Args:
        fusion_cfg (dict | None): The fusion layer of a fusing block
            (:func:`resolve_fusion_cfg`); None: no fusion anywhere.
        depths (Sequence[int]): Blocks per stage.
        fusion_last_k (int, optional): How many of the ``sum(depths)``
            blocks, the last ones, fuse. None: all (the published model);
            0: none (the shared backbone with per-modality norms only).
        owner (str): Backbone name for messages.

    Returns:
        list[list[dict | None]]: per stage, per block, ``fusion_cfg`` or
        None (no fusion layer, no parameters).
    """
    total = sum(depths)
    if fusion_last_k is None:
        fusion_last_k = total
    if (isinstance(fusion_last_k, bool) or not isinstance(fusion_last_k, int)
            or not 0 <= fusion_last_k <= total):
        raise ValueError(
            f'{owner}: fusion_last_k={fusion_last_k!r} must be None or an '
            f'integer in [0, {total}] (the backbone has {total} blocks over '
            f'its stages, depths={tuple(depths)})')
    first_fused = total - fusion_last_k
    cfgs, index = [], 0
    for depth in depths:
        cfgs.append([
            fusion_cfg if index + j >= first_fused else None
            for j in range(depth)
        ])
        index += depth
    return cfgs


class GeminiFusionBackbone(BaseModule):
    """Base of :class:`GeminiFusionMiT` and :class:`GeminiFusionSwin`.

    Subclasses set ``key_map`` (their :class:`BackboneKeyMap`) and
    ``_version`` (``key_map.version``), build ``self.layers`` (one module
    per stage) and implement :meth:`_init_default_weights`.

    * :meth:`init_weights`: the family's own initialisation, then, with
      ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``, the pretrained
      weights through the registered loader
      (:mod:`geminifusion_mmseg.checkpoints`); any other ``init_cfg`` goes
      through :meth:`BaseModule.init_weights`.
    * :meth:`_load_from_state_dict`: keys saved by an earlier layout
      version (state-dict metadata ``version``, as mmcv/mmseg modules do)
      are renamed to the current one before loading, so checkpoints
      written by earlier versions of this plugin still load.
    """
    key_map = BackboneKeyMap
    _version = 1

    def _init_default_weights(self) -> None:
        """The family's own initialisation of every parameter."""
        raise NotImplementedError

    def init_weights(self) -> None:
        """Initialise in place: the family's default, then ``init_cfg``
        (pretrained weights through the registered loader; any other
        config through mmengine)."""
        self._init_default_weights()
        if self.init_cfg is None:
            print_log(
                f'No pre-trained weights for {type(self).__name__}, '
                'training starts from scratch',
                logger='current')
        elif is_pretrained_cfg(self.init_cfg):
            load_pretrained(self, self.init_cfg)
            self._is_init = True
        else:
            super().init_weights()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        """Rename this backbone's keys in ``state_dict`` (in place) from
        the layout of the recorded ``version`` (None: treated as 1) to the
        current one (:meth:`BackboneKeyMap.upgrade_key`), then load as
        ``nn.Module`` does."""
        version = local_metadata.get('version')
        if version is None or version < self._version:
            for key in [k for k in state_dict if k.startswith(prefix)]:
                new = prefix + self.key_map.upgrade_key(
                    key[len(prefix):], version)
                if new != key:
                    state_dict[new] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

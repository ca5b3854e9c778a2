"""NYU Depth v2 (40 classes) for RGB-D semantic segmentation."""
from mmseg.registry import DATASETS

from .rgbd_dataset import RGBDDataset

NYUDV2_CLASSES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
                  'door', 'window', 'bookshelf', 'picture', 'counter',
                  'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow',
                  'mirror', 'floor mat', 'clothes', 'ceiling', 'books',
                  'refrigerator', 'television', 'paper', 'towel',
                  'shower curtain', 'box', 'whiteboard', 'person',
                  'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag',
                  'otherstructure', 'otherfurniture', 'otherprop')

# The PASCAL VOC colour map for ids 1..40 (id 0, "void", is black), the
# colours DFormer/CMX use to draw NYUDv2 and SUN RGB-D labels.
NYUDV2_PALETTE = [[128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                  [128, 0, 128], [0, 128, 128], [128, 128, 128], [64, 0, 0],
                  [192, 0, 0], [64, 128, 0], [192, 128, 0], [64, 0, 128],
                  [192, 0, 128], [64, 128, 128], [192, 128, 128], [0, 64, 0],
                  [128, 64, 0], [0, 192, 0], [128, 192, 0], [0, 64, 128],
                  [128, 64, 128], [0, 192, 128], [128, 192, 128], [64, 64, 0],
                  [192, 64, 0], [64, 192, 0], [192, 192, 0], [64, 64, 128],
                  [192, 64, 128], [64, 192, 128], [192, 192, 128], [0, 0, 64],
                  [128, 0, 64], [0, 128, 64], [128, 128, 64], [0, 0, 192],
                  [128, 0, 192], [0, 128, 192], [128, 128, 192], [64, 0, 64]]


@DATASETS.register_module()
class NYUDv2Dataset(RGBDDataset):
    """NYU Depth v2 RGB-D semantic segmentation, 40 classes.

    (Named ``NYUDv2Dataset`` because mmseg already registers a
    ``NYUDataset`` for depth estimation.)

    The defaults read the TokenFusion / RefineNet release used by
    GeminiFusion: ``rgb/*.png``, ``depth/*.png`` (16-bit, millimetres),
    ``masks/*.png`` (0..39, 255 = ignore), and list files ``train.txt`` /
    ``test.txt`` whose lines are ``rgb/X.png<TAB>masks/X.png<TAB>depth/X.png``.
    In that copy RGB and masks are border-cropped (smaller than 480x640,
    one size per image) and depth is the full 480x640 frame: set
    ``size_mismatch`` (``'stretch'`` as the GeminiFusion release, the zoo
    configs; ``'crop'`` as TokenFusion; see :class:`RGBDDataset`):

    .. code-block:: python

        dict(type='NYUDv2Dataset', data_root='data/nyudv2',
             ann_file='train.txt', size_mismatch='stretch')

    The DFormer/CMX release (``RGB/*.jpg``, ``Depth/*.png`` or ``HHA/*.jpg``,
    ``Label/*.png`` with 0 = void and 1..40 the classes) is a matter of
    config:

    .. code-block:: python

        dict(type='NYUDv2Dataset', data_root='data/NYUDepthv2',
             ann_file='train.txt',  # lines like 'RGB/0.jpg'
             data_prefix=dict(img_path='RGB', depth_path='Depth',
                              seg_map_path='Label'),
             img_suffix='.jpg', depth_suffix='.png',  # '.jpg' for HHA
             reduce_zero_label=True)

    Args:
        img_suffix (str): Defaults to '.png'.
        depth_suffix (str): Defaults to '.png'.
        seg_map_suffix (str): Defaults to '.png'.
        data_prefix (dict): Defaults to
            ``dict(img_path='rgb', depth_path='depth', seg_map_path='masks')``.
        reduce_zero_label (bool): Defaults to False (labels are 0..39).
        **kwargs: See :class:`RGBDDataset`.
    """
    METAINFO = dict(classes=NYUDV2_CLASSES, palette=NYUDV2_PALETTE)

    def __init__(self,
                 img_suffix: str = '.png',
                 depth_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(
                     img_path='rgb', depth_path='depth', seg_map_path='masks'),
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            depth_suffix=depth_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

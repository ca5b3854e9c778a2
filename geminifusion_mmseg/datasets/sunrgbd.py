"""SUN RGB-D (37 classes) for RGB-D semantic segmentation."""
from mmseg.registry import DATASETS

from .nyudv2 import NYUDV2_CLASSES, NYUDV2_PALETTE
from .rgbd_dataset import RGBDDataset


@DATASETS.register_module()
class SUNRGBDDataset(RGBDDataset):
    """SUN RGB-D semantic segmentation, 37 classes (the first 37 of NYUDv2).

    The defaults read the DFormer release used by GeminiFusion:
    ``RGB/*.jpg``, ``Depth/*.png`` (8-bit, each image scaled to its own
    range), ``labels/*.png`` (0 = unlabelled, 1..37 the classes, so
    ``reduce_zero_label=True`` maps 0 to 255 and v to v - 1) and list files
    ``train.txt`` (5285) / ``test.txt`` (5050) with lines
    ``RGB/train_0.jpg<TAB>labels/train_0.png<TAB>Depth/train_0.png``:

    .. code-block:: python

        dict(type='SUNRGBDDataset', data_root='data/sunrgbd',
             ann_file='train.txt')

    Args:
        img_suffix (str): Defaults to '.jpg'.
        depth_suffix (str): Defaults to '.png'.
        seg_map_suffix (str): Defaults to '.png'.
        data_prefix (dict): Defaults to
            ``dict(img_path='RGB', depth_path='Depth', seg_map_path='labels')``
            (used by one-column list lines and by name pairing).
        reduce_zero_label (bool): Defaults to True.
        **kwargs: See :class:`RGBDDataset`.
    """
    METAINFO = dict(classes=NYUDV2_CLASSES[:37], palette=NYUDV2_PALETTE[:37])

    def __init__(self,
                 img_suffix: str = '.jpg',
                 depth_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(
                     img_path='RGB', depth_path='Depth',
                     seg_map_path='labels'),
                 reduce_zero_label: bool = True,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            depth_suffix=depth_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

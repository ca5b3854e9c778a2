"""Write side-by-side RGB | depth | ... | label images of a config's
dataset.

The dataset of ``{phase}_dataloader`` is built with its pipeline, so what
is drawn is what the model gets (after augmentation, before
normalisation)::

    python tools/misc/browse_dataset.py CONFIG --output-dir DIR \
        [--num N] [--phase train|val|test] [--cfg-options k=v ...]

Panels: one per modality, then the label. The RGB channels (0-2); every
other modality (depth: channels 3-5; with more modalities, e.g. DeLiVER's
RGB | depth | event | LiDAR, 3 channels each in the dataset's order)
normalised to 0..255 for viewing and colour-mapped (zeros, i.e. missing
values, black; a 3-channel encoding such as HHA is shown channel-normalised
instead); the label in the dataset palette (255 / ignore black).
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope


def parse_args():
    parser = argparse.ArgumentParser(
        description='Browse a multi-modal dataset: RGB | depth | ... | '
        'label images')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--output-dir',
        default='work_dirs/browse_dataset',
        help='folder to write the PNG files to')
    parser.add_argument(
        '--num', type=int, default=10, help='number of samples to draw')
    parser.add_argument(
        '--phase',
        default='train',
        choices=['train', 'val', 'test'],
        help='which dataloader of the config to browse')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, xxx=yyy format')
    return parser.parse_args()


def unpack(item):
    """(img (H, W, C) float, seg (H, W) or None, name) of a pipeline output."""
    if 'inputs' in item:  # after PackSegInputs (or a TTA list of them)
        inputs, sample = item['inputs'], item.get('data_samples')
        if isinstance(inputs, (list, tuple)):
            inputs, sample = inputs[0], sample[0] if sample else None
        img = inputs.permute(1, 2, 0).cpu().numpy().astype(np.float32)
        seg = None
        if sample is not None and 'gt_sem_seg' in sample:
            seg = sample.gt_sem_seg.data[0].cpu().numpy()
        path = sample.metainfo.get('img_path') if sample is not None else None
    else:
        img = np.asarray(item['img'], dtype=np.float32)
        seg = item.get('gt_seg_map')
        path = item.get('img_path')
    if img.ndim == 2:
        img = img[..., None]
    name = osp.splitext(osp.basename(path))[0] if path else 'sample'
    return img, seg, name


def modality_names(dataset, index: int, num_channels: int):
    """The modality names of a sample, in channel order: the dataset's
    (``modalities`` of its data info), else RGB-D for 6 channels, else
    ``rgb, modality1, modality2, ...``."""
    names = None
    try:
        names = dataset.get_data_info(index).get('modalities')
    except (AttributeError, IndexError):
        pass
    if names is None:
        names = getattr(dataset, 'modalities', None)
    if names is not None and 3 * len(names) == num_channels:
        return tuple(names)
    if num_channels == 6:
        return ('rgb', 'depth')
    return ('rgb', ) + tuple(f'modality{i}'
                             for i in range(1, num_channels // 3))


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    from mmseg.registry import DATASETS

    import geminifusion_mmseg  # noqa: F401  (registers the RGB-D modules)
    from geminifusion_mmseg.visualization import make_multimodal_panel

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader_cfg = cfg.get(f'{args.phase}_dataloader')
    if loader_cfg is None:
        raise SystemExit(f'{args.config} has no {args.phase}_dataloader')
    dataset = DATASETS.build(loader_cfg.dataset)
    palette = dataset.metainfo.get('palette')

    os.makedirs(args.output_dir, exist_ok=True)
    num = min(args.num, len(dataset))
    for i in range(num):
        img, seg, name = unpack(dataset[i])
        canvas = make_multimodal_panel(
            img, modality_names(dataset, i, img.shape[2]),
            [('label', seg)] if seg is not None else [], palette)
        out_file = osp.join(args.output_dir, f'{i:04d}_{name}.png')
        cv2.imwrite(out_file, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        print(f'[{i + 1}/{num}] {out_file}')


if __name__ == '__main__':
    main()

"""Tiny runnable configs derived from the repository's configs.

:func:`write_tiny_config` writes a config file that inherits a real config
(``configs/...``) and only makes it small: a 1-block-per-stage MiT
(widths 16/32/40/64), no pretrained weights, no dataloader workers, the
given data root; extra lines can override anything else. Used to run
``tools/train.py`` / ``tools/test.py`` on synthetic data in seconds.
"""
import os.path as osp
from typing import Optional

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TINY_ARCH = dict(embed_dims=(16, 32, 40, 64), depths=(1, 1, 1, 1))


def write_tiny_config(path: str,
                      base: str,
                      data_root: str,
                      extra: str = '',
                      sr_ratios=(4, 2, 1, 1),
                      test_ann_file: Optional[str] = None) -> str:
    """Write ``path``: ``base`` (relative to the repository) made tiny.

    Args:
        path (str): Config file to write. Its name sets the experiment name.
        base (str): Config to inherit, e.g.
            ``'configs/geminifusion/geminifusion_mit-b3_3xb2-300e_nyudv2-480x640.py'``.
        data_root (str): Data root of every dataloader.
        extra (str): Config text appended at the end.
        sr_ratios (tuple): MiT spatial-reduction ratios (small images need
            small ratios: stage s has H / 2**(s+1) rows).
        test_ann_file (str, optional): ``ann_file`` of the val/test
            dataloaders (keep the base's when None).

    Returns:
        str: ``path``.
    """
    base_path = osp.join(REPO, base)
    ann = '' if test_ann_file is None else f', ann_file={test_ann_file!r}'
    text = f"""_base_ = [{base_path!r}]
data_root = {str(data_root)!r}
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims={TINY_ARCH['embed_dims']},
                  depths={TINY_ARCH['depths']}),
        sr_ratios={tuple(sr_ratios)},
        drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(in_channels=[16, 32, 40, 64], channels=32))
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root{ann}))
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=1))
{extra}
"""
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


#: The DeLiVER RGB-D-E-L zoo config (K = 4 modalities).
DELIVER_RGBDEL = ('configs/geminifusion/'
                  'geminifusion_mit-b2_8xb1-200e_deliver-rgbdel-1024x1024.py')


def write_tiny_deliver_config(path: str,
                              data_root: str,
                              modalities=('rgb', 'depth', 'event'),
                              test_resize: bool = False) -> str:
    """Write ``path``: the DeLiVER zoo config for ``modalities`` (K = 2..4
    of rgb, depth, event, lidar), made tiny as :func:`write_tiny_config`
    does (derived ``in_channels``, ``num_modalities`` and normalisation).

    Args:
        path (str): Config file to write.
        data_root (str): Data root of every dataloader.
        modalities (Sequence[str]): RGB first.
        test_resize (bool): Keep the zoo's test-time resize (short side
            1024); False: the test pipeline only loads, so the network sees
            the input size.

    Returns:
        str: ``path``.
    """
    k = len(modalities)  # in_channels, num_modalities: from modalities
    mean = [123.675, 116.28, 103.53] + [0.0] * 3 * (k - 1)
    std = [58.395, 57.12, 57.375] + [255.0] * 3 * (k - 1)
    pipeline = '' if test_resize else \
        ', pipeline=[_base_.load_modalities, dict(type=\'PackSegInputs\')]'
    text = f"""_base_ = [{osp.join(REPO, DELIVER_RGBDEL)!r}]
data_root = {str(data_root)!r}
modalities = {list(modalities)!r}
model = dict(
    modalities=modalities,
    data_preprocessor=dict(mean={mean!r}, std={std!r}),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims={TINY_ARCH['embed_dims']},
                  depths={TINY_ARCH['depths']}),
        sr_ratios=(4, 2, 1, 1),
        drop_path_rate=0.0, init_cfg=None),
    decode_head=dict(in_channels=[16, 32, 40, 64], channels=32))
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, modalities=modalities))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, modalities=modalities{pipeline}))
test_dataloader = val_dataloader
"""
    with open(path, 'w') as f:
        f.write(text)
    return path


def save_checkpoint(model: torch.nn.Module, path: str) -> str:
    """Save ``{'state_dict': ..., 'meta': {}}`` (what tools/test.py loads)."""
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


QUICKSTART = ('configs/quickstart/'
              'geminifusion_mit-tiny_1xb4-2k_quickstart-96x128.py')


def tiny_quickstart_config(tmp_path,
                           name: str,
                           max_iters: int,
                           interval: int,
                           extra: str = '',
                           base: str = QUICKSTART) -> str:
    """A tiny quickstart config: 48x64 synthetic data (generated into
    ``tmp_path/data``), batch 2, ``max_iters`` iterations, validation at the
    end, a checkpoint every ``interval`` iterations, logs every iteration.

    Args:
        tmp_path: Folder of the config (``<name>.py``) and the data.
        name (str): Config name.
        max_iters (int): Training length (>= 2).
        interval (int): Checkpoint interval.
        extra (str): Config text appended at the end.
        base (str): Config to inherit (relative to the repository, or an
            absolute path, e.g. a copy in an installed wheel).

    Returns:
        str: The config path.
    """
    warmup = min(5, max_iters - 1)
    return write_tiny_config(
        str(osp.join(str(tmp_path), f'{name}.py')),
        base,
        osp.join(str(tmp_path), 'data'),
        extra=f"""
crop_size = (48, 64)
model['backbone']['drop_path_rate'] = 0.1  # stochastic: RNG must resume
generate_cfg = dict(num_train=24, num_val=6, size=(48, 64), seed=1)
train_pipeline = [
    dict(type='LoadRGBDImageFromFile'),
    dict(type='LoadRGBDAnnotations'),
    dict(type='RandomResize', scale=(256, 48), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RGBDPad', size=(64, 48), pad_val=dict(img=0, seg=255)),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(
    generate_cfg=generate_cfg, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(generate_cfg=generate_cfg))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end={warmup}),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False,
         begin={warmup}, end={max_iters})
]
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
log_processor = dict(window_size=1)  # log each iteration's own loss
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval={interval}, max_keep_ckpts=2))
{extra}
""")


def tiny_test_run(tmp_path, base: str, name: str) -> dict:
    """A tiny config of the quickstart ``base`` (4 test images of 48x64,
    generated into ``tmp_path/data``) and a checkpoint of its randomly
    initialised model (seed 0).

    Returns:
        dict: ``tmp``, ``config`` (path), ``ckpt`` (path), ``model``.
    """
    from geminifusion_mmseg.apis import init_model
    config = write_tiny_config(
        str(osp.join(str(tmp_path), f'{name}.py')),
        base,
        osp.join(str(tmp_path), 'data'),
        extra="""
generate_cfg = dict(num_train=2, num_val=4, size=(48, 64), seed=1)
train_dataloader = dict(dataset=dict(generate_cfg=generate_cfg))
val_dataloader = dict(dataset=dict(generate_cfg=generate_cfg))
test_dataloader = val_dataloader
""")
    torch.manual_seed(0)
    model = init_model(config)
    ckpt = save_checkpoint(model, osp.join(str(tmp_path), 'tiny.pth'))
    return dict(tmp=tmp_path, config=config, ckpt=ckpt, model=model)


def load_tool(path: str):
    """A tool script (e.g. tools/analysis_tools/robustness.py) as a module,
    without running its ``main``."""
    import importlib.util
    name = osp.splitext(osp.basename(path))[0] + '_tool'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

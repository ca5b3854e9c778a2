"""Loading a checkpoint into a segmentor, strictly, with one message.

:func:`load_segmentor_checkpoint` is what ``init_model`` and
``tools/test.py`` (hence ``dist_test.sh`` / ``slurm_test.sh``) load
weights with: weights-only reading, released ``.pth.tar`` files converted
in memory, and a refusal that names the missing, unexpected and mismatched
keys when the checkpoint does not fit the model.
:func:`check_dataset_classes` warns when the checkpoint's classes, the
model's and the dataset's disagree.
"""
import logging
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper

from ..utils.checkpoint import load_external_checkpoint
from .io import strip_prefix, upgrade_state_dict
from .released import convert_released_state_dict, find_released_state_dict

__all__ = [
    'CheckpointMismatchError', 'load_segmentor_checkpoint',
    'check_dataset_classes', 'load_test_checkpoint'
]


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model."""


def load_segmentor_checkpoint(model: nn.Module,
                              path: str,
                              strict: bool = True,
                              caller: str = 'init_model') -> dict:
    """Load ``path`` into ``model`` (weights only) and return its meta.

    Accepted: an mmengine checkpoint (``state_dict`` + ``meta``), a bare
    state dict, or a released GeminiFusion file (converted in memory).
    Keys of earlier layouts are upgraded; a ``module.`` prefix is dropped.

    Args:
        model (nn.Module): The segmentor (not wrapped).
        path (str): The checkpoint file.
        strict (bool): Refuse a checkpoint whose keys or shapes do not
            match the model exactly; False loads what matches and logs the
            rest. Defaults to True.
        caller (str): Names the tool in messages.

    Returns:
        dict: The checkpoint's ``meta`` ({} if it has none).

    Raises:
        FileNotFoundError: No such file.
        CheckpointLoadError: The file is empty, not a checkpoint, damaged,
            or holds objects outside the weights-only allow-list.
        CheckpointMismatchError: ``strict`` and the checkpoint does not fit
            (the message names the keys).
    """
    ckpt = load_external_checkpoint(path, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(
            f'{caller}: {path} holds a {type(ckpt).__name__}, not a '
            'checkpoint dict')
    meta: dict = {}
    released = find_released_state_dict(ckpt)
    if released is not None:  # NYUDv2/SUN .pth.tar or a DeLiVER-branch file
        state_dict, info = convert_released_state_dict(
            released, path, allow_custom_arch=True)
        print_log(
            f'{caller}: {path} is a released GeminiFusion checkpoint '
            f'({info.describe()}); converted in memory. Convert it once '
            'with tools/model_converters/geminifusion2mmseg.py to skip '
            'this.',
            logger='current')
    elif 'state_dict' in ckpt:
        state_dict = ckpt['state_dict']
        meta = ckpt.get('meta', None) or {}
    elif ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state_dict = ckpt
    else:
        raise CheckpointMismatchError(
            f'{caller}: {path} is not a segmentor checkpoint: no '
            f"'state_dict' (keys: {sorted(map(str, ckpt))[:8]})")
    state_dict = upgrade_state_dict(model, strip_prefix(state_dict))

    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    problems = []
    for what, keys in (('missing', missing), ('unexpected', unexpected),
                       ('shape mismatch', mismatched)):
        if keys:
            shown = ', '.join(keys[:5]) + (' ...' if len(keys) > 5 else '')
            problems.append(f'{len(keys)} {what}: {shown}')
    if problems:
        msg = (f'{caller}: checkpoint {path} does not fit the model of '
               'the config (' + '; '.join(problems) + '). Is it the config '
               'this checkpoint was trained or converted for?')
        if strict:
            raise CheckpointMismatchError(
                msg + ' (strict=False loads what matches.)')
        print_log(msg, logger='current', level=logging.WARNING)
    bad = set(unexpected) | {m.split(':')[0] for m in mismatched}
    model.load_state_dict({
        k: v
        for k, v in state_dict.items() if k not in bad
    },
                          strict=False)
    return meta if isinstance(meta, dict) else {}


def _names(classes: Sequence[str], n: int = 4) -> str:
    shown = ', '.join(map(str, list(classes)[:n]))
    return shown + (', ...' if len(classes) > n else '')


def check_dataset_classes(checkpoint_meta: dict,
                          dataset_classes: Optional[Sequence[str]],
                          num_classes: Optional[int],
                          path: str,
                          dataset: str = 'the test dataset',
                          caller: str = 'tools/test.py') -> bool:
    """Warn when the checkpoint, the model and the dataset disagree on the
    classes.

    Two warnings, each naming both sides: the classes recorded in the
    checkpoint (``meta['dataset_meta']['classes']``) differ from the
    dataset's (count and the first differing names); the model predicts
    another number of classes than the dataset names (the per-class table
    would name the wrong classes).

    Args:
        checkpoint_meta (dict): The checkpoint's ``meta``.
        dataset_classes (Sequence[str], optional): The dataset's classes.
        num_classes (int, optional): The model's (decode head's) classes.
        path (str): The checkpoint, for the message.
        dataset (str): Names the dataset in the message.
        caller (str): Names the tool in the message.

    Returns:
        bool: True if everything agrees (or is unknown).
    """
    ok = True
    recorded = (checkpoint_meta.get('dataset_meta') or {}).get('classes')
    if recorded is not None and dataset_classes is not None and \
            tuple(recorded) != tuple(dataset_classes):
        ok = False
        recorded, dataset_classes = list(recorded), list(dataset_classes)
        first = next(
            (i for i, (a, b) in enumerate(zip(recorded, dataset_classes))
             if a != b), min(len(recorded), len(dataset_classes)))
        detail = (f'class {first} is {recorded[first]!r} in the checkpoint '
                  f'and {dataset_classes[first]!r} in the dataset'
                  if first < min(len(recorded), len(dataset_classes)) else
                  f'the first {first} agree')
        print_log(
            f'{caller}: checkpoint {path} was trained on {len(recorded)} '
            f'classes ({_names(recorded)}), {dataset} has '
            f'{len(dataset_classes)} ({_names(dataset_classes)}); '
            f'{detail}. The scores below compare predictions and labels '
            'by index under the dataset\'s names: check that the config '
            'matches the checkpoint.',
            logger='current',
            level=logging.WARNING)
    if num_classes is not None and dataset_classes is not None and \
            num_classes != len(dataset_classes):
        ok = False
        print_log(
            f'{caller}: the model predicts {num_classes} classes '
            f'(decode_head.num_classes) but {dataset} names '
            f'{len(dataset_classes)} ({_names(dataset_classes)}): the '
            'per-class table names classes the model does not predict. '
            'Use the config of this dataset (or set its metainfo classes).',
            logger='current',
            level=logging.WARNING)
    return ok


def load_test_checkpoint(runner,
                         path: str,
                         caller: str = 'tools/test.py') -> dict:
    """Load ``path`` strictly into a test runner's segmentor and check its
    classes against the test dataset's.

    The segmentor inside ``runner.model`` (unwrapped from DDP and from a
    test-time-augmentation wrapper) is loaded with
    :func:`load_segmentor_checkpoint` (``strict=True``: the same refusal
    as ``init_model``), then :func:`check_dataset_classes` compares the
    checkpoint's, the model's and the test dataset's classes. Every
    process loads the file itself.

    Args:
        runner: An mmengine ``Runner`` built for testing, whose
            ``load_from`` is None (so ``runner.test()`` loads nothing else).
        path (str): The checkpoint.
        caller (str): Names the tool in messages.

    Returns:
        dict: The checkpoint's ``meta``.
    """
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    if isinstance(model, BaseTTAModel):
        model = model.module
    meta = load_segmentor_checkpoint(model, path, True, caller)
    runner.logger.info(f'{caller}: loaded {path} (strict)')
    dataset = runner.test_dataloader.dataset
    metainfo = getattr(dataset, 'metainfo', None) or {}
    head = getattr(model, 'decode_head', None)
    check_dataset_classes(meta, metainfo.get('classes'),
                          getattr(head, 'num_classes', None), path,
                          f'the test dataset ({type(dataset).__name__})',
                          caller)
    return meta

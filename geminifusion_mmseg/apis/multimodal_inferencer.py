"""``MultiModalSegInferencer``: mmseg's inferencer for RGB-D / RGB-X models.

An mmengine :class:`~mmengine.infer.BaseInferencer` in the style of mmseg's
``MMSegInferencer`` and mmdet3d's ``MultiModalityDet3DInferencer``: one
sample is a dict ``{modality: path or array}`` with the config's
modalities.

.. code-block:: python

    from geminifusion_mmseg.apis import MultiModalSegInferencer

    inferencer = MultiModalSegInferencer(
        model='geminifusion_mit-b3_3xb2-300e_nyudv2-480x640',  # or a config
        weights='mit-b3.pth.tar', device='cpu')
    result = inferencer(dict(rgb='rgb.png', depth='depth.png'))
    result['predictions']  # (H, W) int64 class ids at the RGB size
    inferencer(dict(rgb='data/rgb', depth='data/depth'),  # folders
               batch_size=4, out_dir='out')  # out/pred/*.png, out/vis/*.png

Reading, the test pipeline, missing depth and the ``size_mismatch`` policy
are :func:`~geminifusion_mmseg.apis.inference_model`'s
(:class:`~geminifusion_mmseg.apis.inputs.InferenceInputReader`), and so
are the predictions.
"""
import difflib
import logging
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.utils import track_iter_progress
from mmseg.structures import SegDataSample

from ..datasets.list_maker import scan_folder
from ..utils.atomic_io import atomic_output
from ..visualization import overlay_with_legend
from .inference import init_model, predict_samples
from .inputs import InferenceInputReader
from .precision import check_precision

__all__ = [
    'MultiModalSegInferencer', 'IMAGE_EXTENSIONS', 'pair_folders',
    'find_zoo_model'
]

#: Image files taken from input folders (case-insensitive).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp',
                    '.ppm', '.pgm')

SampleType = Dict[str, Union[str, 'os.PathLike[str]', np.ndarray, None]]
InputsType = Union[SampleType, Sequence[SampleType], Dict[str, str]]


# ----------------------------------------------------------------- helpers
def pair_folders(
    folders: Dict[str, str]
) -> Tuple[List[Tuple[str, Dict[str, str]]], Dict[str, List[str]]]:
    """Pair the image files of one folder per modality by file stem.

    Files are searched recursively; the stem is the path relative to the
    folder without the extension (``a/b.png`` in the RGB folder pairs with
    ``a/b.tiff`` in the depth folder).

    Args:
        folders (dict): ``{modality: folder}``.

    Returns:
        tuple: ``[(stem, {modality: file})]`` sorted by stem for the stems
        found in every folder, and ``{modality: [stems only there]}`` for
        the modalities with unpaired files.

    Raises:
        FileNotFoundError: A folder does not exist.
        ValueError: Two files of one folder share a stem (e.g. ``a.jpg``
            and ``a.png``).
    """
    found: Dict[str, Dict[str, str]] = {}
    for name, folder in folders.items():
        folder = os.fspath(folder)
        stems, _ = scan_folder(folder, '', IMAGE_EXTENSIONS)
        dups = sorted(s for s, paths in stems.items() if len(paths) > 1)
        if dups:
            raise ValueError(f'{name} folder {folder}: several images share '
                             f'the name(s) {dups[:5]}; keep one file per name')
        found[name] = {
            stem: osp.join(folder, paths[0])
            for stem, paths in stems.items()
        }
    common = set.intersection(*(set(v) for v in found.values()))
    unpaired = {
        name: sorted(set(files) - common)
        for name, files in found.items() if set(files) - common
    }
    pairs = [(stem, {
        name: found[name][stem]
        for name in folders
    }) for stem in sorted(common)]
    return pairs, unpaired


def _repo_or_mim_dir() -> str:
    return BaseInferencer._get_repo_or_mim_dir('geminifusion_mmseg')


def find_zoo_model(name: str) -> Tuple[str, Optional[str]]:
    """The config file and the weights URL of a model-zoo name.

    Args:
        name (str): A ``Name`` (or ``Alias``) of
            ``configs/geminifusion/metafile.yaml``, case-insensitive.

    Returns:
        tuple: (config file, weights URL or None).

    Raises:
        ValueError: Unknown name; the message lists the closest names.
    """
    root = _repo_or_mim_dir()
    names = []
    for entry in BaseInferencer._get_models_from_metafile(root):
        aliases = entry.get('Alias', [])
        aliases = [aliases] if isinstance(aliases, str) else list(aliases)
        names.append(entry['Name'])
        if name.lower() in [a.lower() for a in [entry['Name']] + aliases]:
            weights = entry.get('Weights', None)
            if isinstance(weights, list):
                weights = weights[0] if weights else None
            return osp.join(root, entry['Config']), weights
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    hint = f'; closest: {close}' if close else ''
    raise ValueError(f'MultiModalSegInferencer: {name!r} is neither a config '
                     f'file nor a model-zoo name (model-index.yml of {root})'
                     f'{hint}. All names: {names}')


def _local_weights(weights: str) -> str:
    """``weights``, or for an http(s) URL the file in torch's hub cache
    (downloaded once)."""
    if not weights.startswith(('http://', 'https://')):
        return weights
    folder = osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(folder, osp.basename(weights.split('?')[0]))
    if not osp.isfile(path):
        os.makedirs(folder, exist_ok=True)
        print_log(
            f'MultiModalSegInferencer: downloading {weights} to {path}',
            logger='current')
        with atomic_output(path, what='downloaded weights') as tmp:
            torch.hub.download_url_to_file(weights, tmp, progress=False)
    return path


def _write_png(image: np.ndarray, path: str, what: str) -> None:
    """Write ``image`` (BGR or a label map) to ``path`` atomically."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with atomic_output(path, what=what) as tmp:
        if not cv2.imwrite(tmp, image):
            raise OSError(f'could not write {path}')


def _label_png(label: np.ndarray) -> np.ndarray:
    """A label map as a PNG-able array: uint8, or uint16 beyond 255."""
    if label.size and (label.min() < 0 or label.max() > 65535):
        raise ValueError('class ids outside 0..65535 cannot be written '
                         'as PNG')
    dtype = np.uint8 if not label.size or label.max() < 256 else np.uint16
    return label.astype(dtype)


# --------------------------------------------------------------- inferencer
class MultiModalSegInferencer(BaseInferencer):
    """Semantic segmentation inferencer for multi-modal (RGB-D, RGB-X,
    K-modality) GeminiFusion models.

    Args:
        model (str | Config): A config file (or object), or a model-zoo
            name of ``configs/geminifusion/metafile.yaml`` (e.g.
            ``'geminifusion_mit-b3_3xb2-300e_nyudv2-480x640'``; then
            ``weights`` defaults to the zoo's released file, downloaded
            once into torch's hub cache).
        weights (str, optional): Checkpoint: an mmengine checkpoint, a bare
            state dict or a released GeminiFusion ``.pth.tar``, loaded by
            :func:`~geminifusion_mmseg.apis.init_model` (weights only,
            strict). None leaves the weights random (a warning).
        device (str, optional): E.g. 'cpu', 'cuda:0'. None: CUDA if
            available, else CPU.
        scope (str): Registry scope. Defaults to 'mmseg'.
        show_progress (bool): Show a progress bar when there is more than
            one batch. Defaults to True.
        precision (str): 'fp32' (default), 'bf16' or 'bf16-force', as
            :func:`~geminifusion_mmseg.apis.init_model`'s ``precision``
            (docs/inference.md).

    Inputs of :meth:`__call__` (modalities: the config's, e.g. ``rgb`` and
    ``depth``, or ``rgb``, ``depth``, ``thermal``; RGB-D configs accept a
    missing or None depth: depth missing):

    * one sample ``dict(rgb='a.png', depth='a_depth.png')``; values are
      file paths or arrays (RGB: (H, W, 3) uint8 in RGB order; others as
      stored, see :func:`~geminifusion_mmseg.apis.inference_model`);
    * a list of such dicts;
    * a dict of folders ``dict(rgb='dir/rgb', depth='dir/depth')``: the
      files are paired by stem (recursively); a file without partners is
      a ValueError naming it.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {
        'show', 'wait_time', 'img_out_dir', 'opacity', 'return_vis', 'branch'
    }
    postprocess_kwargs: set = {'pred_out_dir', 'return_datasample'}

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: Optional[str] = 'mmseg',
                 show_progress: bool = True,
                 precision: str = 'fp32') -> None:
        self.num_unnamed = 0
        self.precision = check_precision(precision)
        if isinstance(model, os.PathLike):
            model = os.fspath(model)
        if isinstance(model, str) and not osp.isfile(model) and \
                model.endswith('.py'):
            raise FileNotFoundError(
                f'MultiModalSegInferencer: config file {model} not found')
        super().__init__(
            model=model,
            weights=weights,
            device=device,
            scope=scope,
            show_progress=show_progress)

    # ------------------------------------------------------------- building
    def _load_model_from_metafile(self, model: str) -> Tuple[Config, str]:
        config, weights = find_zoo_model(model)
        return Config.fromfile(config), weights

    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str) -> nn.Module:
        """:func:`~geminifusion_mmseg.apis.init_model` (the project's
        checkpoint loading: weights only, released files converted)."""
        if not cfg:
            raise ValueError('MultiModalSegInferencer: give model= (a config '
                             'file or a model-zoo name)')
        checkpoint = None if weights is None else _local_weights(weights)
        return init_model(
            cfg, checkpoint, device=device, precision=self.precision)

    def _init_pipeline(self, cfg: Config) -> InferenceInputReader:
        """The reader of one sample (``inference_model``'s)."""
        return InferenceInputReader(self.model.cfg)

    def _init_collate(self, cfg: Config):
        """Batches stay lists of packed samples (``predict_samples``
        batches those of one size)."""
        return list

    def _init_visualizer(self, cfg: Config) -> None:
        """Overlays are drawn by
        :func:`~geminifusion_mmseg.visualization.overlay_with_legend`."""
        return None

    # --------------------------------------------------------------- inputs
    def _inputs_to_list(self, inputs: InputsType) -> List[SampleType]:
        """Samples from one dict, a list of dicts or a dict of folders;
        also sets ``self._names`` (output file stems) and
        ``self._from_folders``."""
        self._from_folders = False
        if isinstance(inputs, dict) and inputs and all(
                isinstance(v, (str, os.PathLike)) and osp.isdir(v)
                for v in inputs.values()):
            self._check_modalities(inputs, 'the folder dict')
            pairs, unpaired = pair_folders(inputs)
            if unpaired:
                lines = '; '.join(
                    f'{len(stems)} in {name} ({inputs[name]}) only: '
                    f"{', '.join(stems[:10])}"
                    f"{' ...' if len(stems) > 10 else ''}"
                    for name, stems in unpaired.items())
                raise ValueError(
                    'MultiModalSegInferencer: files without a partner in '
                    f'every modality folder (paired by name without '
                    f'extension): {lines}')
            if not pairs:
                raise ValueError('MultiModalSegInferencer: no images in '
                                 f'the folders {dict(inputs)}')
            self._from_folders = True
            self._names = [stem for stem, _ in pairs]
            return [sample for _, sample in pairs]
        if isinstance(inputs, dict):
            dirs = sorted(
                k for k, v in inputs.items()
                if isinstance(v, (str, os.PathLike)) and osp.isdir(v))
            if dirs:
                raise ValueError(
                    f'MultiModalSegInferencer: {dirs} are folders but '
                    f'{sorted(set(inputs) - set(dirs))} are not; give '
                    'either one file / array per modality or one folder '
                    'per modality')
            samples = [inputs]
        elif isinstance(inputs, (list, tuple)) and all(
                isinstance(s, dict) for s in inputs):
            samples = list(inputs)
        else:
            raise TypeError(
                'MultiModalSegInferencer: inputs must be a dict per sample '
                "(dict(rgb=..., depth=...)), a list of them, or a dict of "
                f'folders; got {type(inputs).__name__}')
        for i, sample in enumerate(samples):
            self._check_modalities(sample, f'input [{i}]')
        self._names = [self._name_of(s) for s in samples]
        return samples

    def _check_modalities(self, sample: dict, what: str) -> None:
        try:
            self.pipeline.check_keys(sample)
        except ValueError as e:
            raise ValueError(f'MultiModalSegInferencer: {what}: {e}') from e

    def _name_of(self, sample: SampleType) -> str:
        """Output stem of a sample: its RGB file's, or a running number."""
        rgb = sample.get('rgb')
        if isinstance(rgb, (str, os.PathLike)):
            return osp.splitext(osp.basename(os.fspath(rgb)))[0]
        name = f'{self.num_unnamed:08d}'
        self.num_unnamed += 1
        return name

    # ------------------------------------------------------------- running
    def __call__(self,
                 inputs: InputsType,
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: float = 0,
                 out_dir: str = '',
                 img_out_dir: str = 'vis',
                 pred_out_dir: str = 'pred',
                 **kwargs) -> Union[dict, SegDataSample, List[SegDataSample]]:
        """Segment the inputs.

        Args:
            inputs: One sample dict, a list of them, or a dict of folders
                (see the class docstring).
            return_datasamples (bool): Return the SegDataSamples (one, or a
                list for a list / folder input) instead of the dict.
                Defaults to False.
            batch_size (int): Samples per forward pass (those of one
                network input size run together). Defaults to 1.
            return_vis (bool): Return the overlays. Defaults to False.
            show (bool): Show each overlay in a window. Defaults to False.
            wait_time (float): Seconds a shown window waits (0: a key).
            out_dir (str): Write ``out_dir/<pred_out_dir>/<stem>.png``
                (class ids, uint8; uint16 beyond 255 classes) and
                ``out_dir/<img_out_dir>/<stem>.png`` (the overlay with a
                class legend). ``<stem>``: the RGB file's name without
                extension (the path relative to the folder for folder
                inputs; a running number for arrays). '' writes nothing.
            img_out_dir (str): Subfolder of the overlays. Defaults to 'vis'.
            pred_out_dir (str): Subfolder of the predictions. Defaults to
                'pred'.
            **kwargs: ``opacity`` (0..1, default 0.5) and ``branch`` (the
                prediction drawn: 'ens', the fused one (default), or a
                branch name of the model such as 'rgb', 'depth').

        Returns:
            dict: ``predictions``: (H, W) int64 class-id arrays at each RGB
            input's size (one array for a single sample dict, else a list);
            ``visualization``: the (H, W', 3) uint8 RGB overlays (same
            nesting) if ``return_vis``, else an empty list. With
            ``return_datasamples`` the SegDataSamples instead
            (``pred_sem_seg``, ``seg_logits``, branch predictions).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError('MultiModalSegInferencer: batch_size must be a '
                             f'positive integer, got {batch_size!r}')
        if out_dir:
            img_out_dir = osp.join(out_dir, img_out_dir)
            pred_out_dir = osp.join(out_dir, pred_out_dir)
        else:
            img_out_dir = pred_out_dir = ''
        (preprocess_kwargs, forward_kwargs, visualize_kwargs,
         postprocess_kwargs) = self._dispatch_kwargs(
             return_vis=return_vis,
             show=show,
             wait_time=wait_time,
             img_out_dir=img_out_dir,
             pred_out_dir=pred_out_dir,
             **kwargs)
        samples = self._inputs_to_list(inputs)
        self._single = isinstance(inputs, dict) and not self._from_folders
        self.pipeline.warn_missing(samples, not self._single,
                                   'MultiModalSegInferencer')
        names = self._names
        dups = sorted({n for n in names if names.count(n) > 1})
        if out_dir and dups:
            raise ValueError(
                f'MultiModalSegInferencer: several inputs would be written '
                f'as {dups[:5]} in {out_dir} (RGB files of the same name); '
                'rename them or run them separately')
        chunks = self.preprocess(
            samples, batch_size=batch_size, **preprocess_kwargs)
        num_batches = -(-len(samples) // batch_size)
        if self.show_progress and num_batches > 1:
            chunks = track_iter_progress((chunks, num_batches),
                                         file=sys.stdout)
        preds: List[SegDataSample] = []
        for data in chunks:
            preds.extend(self.forward(data, **forward_kwargs))
        if self.show_progress and num_batches > 1:
            sys.stdout.write('\n')
        visualization = self.visualize(
            samples, preds, names=names, **visualize_kwargs)
        return self.postprocess(
            preds,
            visualization,
            return_datasample=return_datasamples,
            names=names,
            **postprocess_kwargs)

    def preprocess(self, inputs: List[SampleType], batch_size: int = 1):
        """Yield lists of up to ``batch_size`` packed samples."""
        chunk: List[dict] = []
        for i, sample in enumerate(inputs):
            chunk.append(self.pipeline(sample, f'[{i}]'))
            if len(chunk) == batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def forward(self, inputs: List[dict], **kwargs) -> List[SegDataSample]:
        """``model.test_step`` on one batch (``predict_samples``)."""
        return predict_samples(self.model, inputs)

    def visualize(self,
                  inputs: List[SampleType],
                  preds: List[SegDataSample],
                  names: Sequence[str] = (),
                  return_vis: bool = False,
                  show: bool = False,
                  wait_time: float = 0,
                  img_out_dir: str = '',
                  opacity: float = 0.5,
                  branch: str = 'ens') -> Optional[List[np.ndarray]]:
        """The prediction over the RGB image, with a legend of the classes
        present (``visualization.overlay_with_legend``).

        Returns:
            list[np.ndarray] | None: (H, W', 3) uint8 RGB overlays if
            ``return_vis``.
        """
        if not (return_vis or show or img_out_dir):
            return None
        if not 0 <= opacity <= 1:
            raise ValueError('MultiModalSegInferencer: opacity must be in '
                             f'[0, 1], got {opacity}')
        key = 'pred_sem_seg' if branch == 'ens' else f'pred_sem_seg_{branch}'
        meta = self.model.dataset_meta
        results = []
        for i, (sample, pred) in enumerate(zip(inputs, preds)):
            if key not in pred:
                known = sorted(k[len('pred_sem_seg_'):] for k in pred.keys()
                               if k.startswith('pred_sem_seg_'))
                raise ValueError(
                    f'MultiModalSegInferencer: branch {branch!r}: the model '
                    f"gives no {key}; choose 'ens' or one of {known}")
            label = pred.get(key).data[0].cpu().numpy()
            rgb = self.pipeline.load_rgb(sample['rgb'])
            vis = overlay_with_legend(rgb, label, meta['classes'],
                                      meta['palette'], opacity)
            if img_out_dir:
                _write_png(
                    cv2.cvtColor(vis, cv2.COLOR_RGB2BGR),
                    osp.join(img_out_dir, names[i] + '.png'), 'overlay')
            if show:
                import mmcv
                mmcv.imshow(vis[..., ::-1], names[i], int(wait_time * 1000))
            if return_vis:
                results.append(vis)
        return results if return_vis else None

    def postprocess(self,
                    preds: List[SegDataSample],
                    visualization: Optional[List[np.ndarray]],
                    return_datasample: bool = False,
                    names: Sequence[str] = (),
                    pred_out_dir: str = '') -> Any:
        """Label maps (and ``pred_out_dir`` PNGs) from the predictions.

        Returns:
            dict | SegDataSample | list[SegDataSample]: See
            :meth:`__call__`.
        """
        labels = [p.pred_sem_seg.data[0].cpu().numpy() for p in preds]
        if pred_out_dir:
            for name, label in zip(names, labels):
                _write_png(
                    _label_png(label), osp.join(pred_out_dir, name + '.png'),
                    'prediction')
            print_log(
                f'MultiModalSegInferencer: wrote {len(labels)} '
                f'prediction(s) to {pred_out_dir}',
                logger='current',
                level=logging.INFO)
        if return_datasample:
            return preds[0] if self._single else preds
        vis = visualization if visualization is not None else []
        if self._single:
            return dict(
                predictions=labels[0], visualization=vis[0] if vis else [])
        return dict(predictions=labels, visualization=vis)

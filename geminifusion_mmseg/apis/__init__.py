"""High-level inference: build a model from a config and a checkpoint, and
segment RGB-D pairs given as files or arrays.

.. code-block:: python

    from geminifusion_mmseg.apis import inference_model, init_model

    model = init_model(CONFIG, CHECKPOINT, device='cpu')
    result = inference_model(model, 'rgb.png', 'depth.png')
    result.pred_sem_seg.data  # (1, H, W) class ids at the RGB image's size

The inferencer (mmseg's ``MMSegInferencer`` for K modalities: folders,
batches, prediction PNGs and overlays):

.. code-block:: python

    from geminifusion_mmseg.apis import MultiModalSegInferencer

    inferencer = MultiModalSegInferencer(CONFIG, CHECKPOINT, device='cpu')
    inferencer(dict(rgb='rgb.png', depth='depth.png'))['predictions']

ONNX Runtime (``pip install -e .[deploy]``), same inputs and outputs:

.. code-block:: python

    from geminifusion_mmseg.apis import inference_onnx_model, init_onnx_model

    model = init_onnx_model('model.onnx')  # tools/deployment/pytorch2onnx.py
    result = inference_onnx_model(model, 'rgb.png', 'depth.png')
    # K modalities: the dict of inference_model, e.g.
    # inference_onnx_model(model, dict(rgb=..., depth=..., event=...))

Inputs are read, checked and batched by :mod:`.inputs`, the same for
PyTorch and ONNX Runtime.
"""
from .inference import inference_model, init_model
from .multimodal_inferencer import MultiModalSegInferencer
from .onnx_inference import (ONNXSegmentor, inference_onnx_model,
                             init_onnx_model, read_onnx_metadata)

__all__ = [
    'init_model', 'inference_model', 'MultiModalSegInferencer',
    'init_onnx_model', 'inference_onnx_model', 'ONNXSegmentor',
    'read_onnx_metadata'
]

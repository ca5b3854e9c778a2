"""High-level inference: build a model from a config and a checkpoint, and
segment RGB-D pairs given as files or arrays.

.. code-block:: python

    from geminifusion_mmseg.apis import inference_model, init_model

    model = init_model(CONFIG, CHECKPOINT, device='cpu')
    result = inference_model(model, 'rgb.png', 'depth.png')
    result.pred_sem_seg.data  # (1, H, W) class ids at the RGB image's size
"""
from .inference import inference_model, init_model

__all__ = ['init_model', 'inference_model']

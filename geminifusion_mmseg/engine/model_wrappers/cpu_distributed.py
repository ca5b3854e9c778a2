"""DistributedDataParallel that also wraps CPU models (gloo backend)."""
from mmengine.model import MMDistributedDataParallel
# registered in mmengine's root registry: the Runner looks wrappers up there
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUCompatibleDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper, usable when the model lives on the CPU.

    mmengine's Runner always passes ``device_ids=[LOCAL_RANK]``, which torch
    rejects for CPU modules. On CPU the device ids are dropped; on GPU this
    is exactly :class:`MMDistributedDataParallel`.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)

"""Reading a config's test pipeline (for inference and export)."""
import copy
from typing import List, Optional

from mmengine.config import Config

__all__ = [
    'find_test_dataset_cfg', 'find_test_pipeline', 'find_size_mismatch',
    'transform_name'
]


def find_test_dataset_cfg(cfg: Config) -> Optional[dict]:
    """The dataset config of the test (else val) dataloader, unwrapped from
    ConcatDataset / RepeatDataset-style wrappers; None if there is none."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key, None)
        if not isinstance(loader, dict):
            continue
        dataset = loader.get('dataset', None)
        while isinstance(dataset, dict) and 'pipeline' not in dataset:
            if isinstance(dataset.get('dataset', None), dict):
                dataset = dataset['dataset']
            elif dataset.get('datasets', None):
                dataset = dataset['datasets'][0]
            else:
                break
        if isinstance(dataset, dict):
            return dataset
    return None


def find_size_mismatch(cfg: Config) -> str:
    """The test dataset's ``size_mismatch`` (what its loader does with a
    modality of another size than RGB); 'error' if it sets none."""
    dataset = find_test_dataset_cfg(cfg) or {}
    return dataset.get('size_mismatch', None) or 'error'


def find_test_pipeline(cfg: Config) -> List[dict]:
    """Copies of the test pipeline's steps: the test dataloader's, else
    ``cfg.test_pipeline``; an empty list if the config has neither."""
    dataset = find_test_dataset_cfg(cfg)
    steps = None
    if dataset is not None and dataset.get('pipeline', None):
        steps = dataset['pipeline']
    elif cfg.get('test_pipeline', None):
        steps = cfg.test_pipeline
    return [copy.deepcopy(dict(t)) for t in steps or []]


def transform_name(transform: dict) -> str:
    """The registered name of a transform config's ``type`` (a string,
    possibly scoped like ``'mmseg.Resize'``, or a class)."""
    t = transform.get('type', '')
    if isinstance(t, str):
        return t.split('.')[-1]
    return getattr(t, '__name__', str(t))

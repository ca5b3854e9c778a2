"""Per-sample random generators for reproducible corruptions.

A test-time corruption must hit every sample the same way whatever the
number of data-loader workers, processes (``--launcher pytorch``) or the
order in which samples are visited. So its random numbers are not drawn
from a shared stream: each sample gets its own generator, derived from the
transform's ``seed``, a salt (the transform's name) and the sample's
identity (``img_path``, else ``sample_idx``).

With ``seed=None`` (training augmentation) the generator is drawn from
NumPy's global generator instead, which mmengine seeds per worker
(``randomness=dict(seed=...)``): a new draw for every visit of a sample.
"""
import hashlib
from typing import Optional

import numpy as np


def sample_key(results: dict) -> str:
    """The identity of a sample: its ``img_path``, else ``sample_idx``,
    else '' (the same generator for every anonymous sample)."""
    for key in ('img_path', 'sample_idx'):
        value = results.get(key, None)
        if value is not None:
            return f'{key}={value}'
    return ''


def sample_rng(results: dict, seed: Optional[int],
               salt: str) -> np.random.Generator:
    """A generator for one sample.

    Args:
        results (dict): The sample (``img_path`` / ``sample_idx`` name it).
        seed (int, optional): None draws from NumPy's global generator (a
            fresh draw per call, for training); an int gives the same
            generator for the same sample, seed and salt in every run,
            worker and process.
        salt (str): Separates the streams of different transforms.

    Returns:
        np.random.Generator
    """
    if seed is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))
    text = f'{salt}|{int(seed)}|{sample_key(results)}'.encode()
    digest = hashlib.sha256(text).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], 'little'))

"""Helpers for tests and analysis tools, shipped with the package (as mmseg
keeps its own in ``mmseg.testing``), so that tools never import from the
repository's ``tests`` (mmseg's wheel installs a top-level ``tests`` package
into site-packages, which would shadow ours).

* :mod:`.literal_fusion`, :mod:`.literal_mit`, :mod:`.literal_swin`,
  :mod:`.literal_segmenter`: literal implementations of the published
  GeminiFusion. They follow the release step by step (per-sample Python
  loops, ``nn.MultiheadAttention`` with a 2-token key sequence, the
  modalities as separate passes) and are the oracle that the tests and the
  benchmark compare the vectorised plugin against.
* :mod:`.literal_protocol`: the release's evaluation path (``main.py
  --evaluate``: reading, two-step resize, normalisation, OpenCV bicubic
  logits, its confusion matrix and scores), needs Pillow (tests extra).
* :mod:`.literal_deliver` / :mod:`.literal_deliver_data`: the DeLiVER code
  line's model (K modalities, OHEM loss) and data reading.
* :mod:`.literal_hha`: Gupta et al.'s MATLAB HHA code (saveHHA and the
  rgbdutils it calls), transcribed line by line; needs scipy.
* :mod:`.benchmark`: the former name of
  :mod:`geminifusion_mmseg.utils.benchmark` (measurement, not testing),
  kept for old imports.

Nothing here is imported by ``import geminifusion_mmseg``.
"""

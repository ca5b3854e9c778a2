"""Literal implementations of the published GeminiFusion, written from SPEC.

They follow the release step by step (per-sample Python loops,
``nn.MultiheadAttention`` with a 2-token key sequence, the modalities as
separate passes) and are the oracle that the tests and the benchmark compare
the vectorised plugin against.
"""

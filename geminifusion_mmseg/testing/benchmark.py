"""Former home of the benchmark tools' measurement helpers, kept so that
existing imports work: they are :mod:`geminifusion_mmseg.utils.benchmark`.
"""
from ..utils.benchmark import *  # noqa: F401,F403
from ..utils.benchmark import __all__  # noqa: F401

"""mmhrsam: HRSAM and HRSAM++ high-resolution Segment-Anything encoders for OpenMMLab.

Importing the package registers every module into the registries of
:mod:`mmhrsam.registry`, so configs can name them as ``type='FlashSwinAttention'``
(inside mmhrsam's scope) or ``type='mmhrsam.FlashSwinAttention'`` (from any
OpenMMLab project that lists ``mmhrsam`` in ``custom_imports``).
"""
from .version import __version__
from . import models  # noqa: F401  (registers the models)

__all__ = ['__version__']

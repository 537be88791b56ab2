"""mmhrsam: HRSAM and HRSAM++ high-resolution Segment-Anything encoders for OpenMMLab.

Importing the package registers the models into the registries of :mod:`mmhrsam.registry`,
so configs can name them as ``type='FlashSwinAttention'`` (inside mmhrsam's scope) or
``type='mmhrsam.FlashSwinAttention'`` (from any OpenMMLab project that lists ``mmhrsam`` in
``custom_imports``). Datasets, metrics, loops and training machinery register lazily, the
first time a registry of that kind is searched (``locations`` in :mod:`mmhrsam.registry`),
so ``import mmhrsam`` stays light for users who only run the encoders.
"""
from .version import __version__
from . import models  # noqa: F401  (registers the models)

__all__ = ['__version__']

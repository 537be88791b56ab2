from . import layers, attention, backbones, heads, necks, segmentors  # noqa: F401  (register the modules)
from . import losses  # noqa
from . import data_preprocessor  # noqa: F401  (InteractiveDataPreprocessor)

from . import attention, backbones, heads, necks, segmentors  # noqa: F401  (register the modules)

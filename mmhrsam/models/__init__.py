from . import attention, backbones, heads, necks  # noqa: F401  (register the modules)

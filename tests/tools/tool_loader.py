"""Importing the command-line scripts under tools/ in tests (the tools folder is not a package)."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_tool(relative_path: str, name: str, register: bool = False):
    """Execute ``ROOT/relative_path`` as a module called ``name`` and return it.

    Args:
        relative_path (str): e.g. ``'tools/analysis/benchmark_encoder.py'``.
        name (str): the module's name.
        register (bool): also put it in ``sys.modules`` (needed by scripts whose dataclasses
            look their module up while it executes).
    """
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

"""``torch.compile`` with the predictor's switch semantics: on demand, with an eager fallback."""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Iterator, Optional, Union

import torch

Switch = Union[str, bool]


def resolve_switch(value: Switch, name: str, device: torch.device) -> bool:
    """``'auto'`` -> on for CUDA, off elsewhere; True on a non-CUDA device is an error."""
    if value == 'auto':
        return device.type == 'cuda'
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be 'auto', True or False, got {value!r}")
    if value and device.type != 'cuda':
        raise ValueError(f'{name}=True needs a CUDA device, got {device.type}')
    return value


class CompiledOrEager:
    """``fn`` compiled with ``torch.compile(fullgraph=True)`` on its first call, or ``fn`` itself.

    Args:
        fn (callable): the function or module to run.
        mode (str | bool): the user's switch: ``'auto'`` (a compilation error warns once and
            ``fn`` runs eagerly from then on), True (errors propagate) or False (eager).
        enabled (bool): the switch resolved for the device (:func:`resolve_switch`).
        dynamic (bool, optional): ``torch.compile``'s ``dynamic``: False compiles per input
            shape, True makes every size symbolic, None lets marked dimensions vary.
    """

    def __init__(self, fn: Callable, mode: Switch, enabled: bool, dynamic: Optional[bool]):
        self.fn = fn
        self.mode = mode
        self.enabled = enabled
        self._compiled = torch.compile(fn, fullgraph=True, dynamic=dynamic) if enabled else None

    def __call__(self, *args):
        if not self.enabled:
            return self.fn(*args)
        try:
            return self._compiled(*args)
        except Exception as exc:  # noqa: BLE001  (any compiler failure; eager is the fallback)
            if self.mode is True:
                raise
            name = getattr(self.fn, '__name__', type(self.fn).__name__)
            warnings.warn(f'torch.compile of {name} failed ({type(exc).__name__}: {str(exc)[:200]}); '
                          'running it eagerly')
            self.enabled, self._compiled = False, None
            return self.fn(*args)


@contextlib.contextmanager
def float32_matmul_precision(precision: str) -> Iterator[None]:
    """``torch.set_float32_matmul_precision(precision)`` inside the block, restored after."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)

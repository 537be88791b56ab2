"""Fixtures of the API tests."""
import functools

import pytest
import torch


@pytest.fixture
def eager_backend(monkeypatch):
    """``torch.compile`` with Dynamo's eager backend: traced and guarded as for Inductor, run
    on the CPU without generating code; Dynamo's caches reset before and after."""
    monkeypatch.setattr(torch, 'compile', functools.partial(torch.compile, backend='eager'))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()

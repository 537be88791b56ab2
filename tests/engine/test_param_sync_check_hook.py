"""ParamSyncCheckHook: checksums recorded per rank, divergence reported with parameter names."""
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import mmhrsam.engine.hooks as hooks_module
from mmhrsam.engine import ParamSyncCheckHook


def runner(tmp_path, model):
    return SimpleNamespace(model=model, work_dir=str(tmp_path), iter=0)


def test_records_sum_and_sum_of_squares(tmp_path):
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.fill_(3.0)
    hook = ParamSyncCheckHook(interval=1, record=True)
    hook.after_train_iter(runner(tmp_path, model), 0)
    assert json.loads((tmp_path / 'param_checksums_rank0.json').read_text()) == [[1, [2.0, 14.0]]]


def test_divergence_names_the_parameters(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    other = {n: float(p.detach().double().sum()) for n, p in model.named_parameters()}
    other['1.bias'] += 0.5  # the other rank differs in one parameter
    gathered = iter([[ParamSyncCheckHook.checksum(model), [0.0, 0.0]], [other, other]])
    monkeypatch.setattr(hooks_module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(hooks_module, 'all_gather_object', lambda obj: next(gathered))
    with pytest.raises(RuntimeError, match=r"differing parameters \(1\): \['1.bias'\]"):
        ParamSyncCheckHook(interval=1).after_train_iter(runner(tmp_path, model), 0)

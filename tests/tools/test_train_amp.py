"""tools/train.py --amp: bf16 autocast without a loss scaler, fp16 with dynamic scaling."""

import pytest
import torch
from mmengine.config import Config
from tool_loader import load_tool



def load_train_tool():
    return load_tool('tools/train.py', 'train_tool')


@pytest.mark.parametrize('bf16, dtype, loss_scale', [(True, 'bfloat16', dict(enabled=False)),
                                                    (False, 'float16', 'dynamic')])
def test_enable_amp(monkeypatch, bf16, dtype, loss_scale):
    train = load_train_tool()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: bf16)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))))
    train.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == dtype
    assert cfg.optim_wrapper.loss_scale == loss_scale
    if isinstance(loss_scale, dict):  # what MMEngine builds from it: a scaler that does nothing
        scaler = torch.amp.GradScaler('cuda', **loss_scale)
        loss = torch.tensor(3.5)
        assert not scaler.is_enabled() and scaler.scale(loss) is loss


def test_enable_amp_keeps_a_configured_amp_wrapper():
    train = load_train_tool()
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', dtype='float16', loss_scale=512.0,
                                         optimizer=dict(type='AdamW', lr=1e-3))))
    train.enable_amp(cfg)
    assert cfg.optim_wrapper.dtype == 'float16' and cfg.optim_wrapper.loss_scale == 512.0

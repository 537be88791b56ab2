"""tools/annotate.py: which model it loads by default, and the server it starts."""
import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

pytest.importorskip('fastapi')
pytest.importorskip('uvicorn')
from mmhrsam.apis.annotation import load_shared_model  # noqa: E402
from tool_loader import load_tool  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CONFIG = os.path.join(ROOT, 'configs', 'quickstart', 'hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py')


@pytest.fixture
def tool():
    return load_tool('tools/annotate.py', 'annotate_tool')


def test_default_model_is_the_trained_quickstart_when_it_exists(tool, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, 'REPO', str(tmp_path))
    monkeypatch.setattr(tool, 'QUICKSTART_POINTER', str(tmp_path / 'last_checkpoint'))
    assert tool.model_source(tool.parse_args([])) == (tool.QUICKSTART_CONFIG, None, False)
    # What tools/quickstart.sh leaves: a pointer to an MMEngine training checkpoint.
    model = load_shared_model(CONFIG, None, 'cpu').base
    state = {f'{name}.{k}': v for name in ('backbone', 'head')
             for k, v in getattr(model, name).state_dict().items()}
    state = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(dict(state_dict=state, meta=dict(iter=1300), message_hub=argparse.Namespace(x=1)),
               tmp_path / 'iter_1300.pth')
    (tmp_path / 'last_checkpoint').write_text('iter_1300.pth')
    config, checkpoint, allow_pickle = tool.model_source(tool.parse_args([]))
    assert (config, checkpoint, allow_pickle) == (tool.QUICKSTART_CONFIG, str(tmp_path / 'iter_1300.pth'), True)
    loaded = load_shared_model(config, checkpoint, 'cpu', allow_pickle)
    assert loaded.warning is None and 'iter_1300.pth' in loaded.description
    for key, value in loaded.base.backbone.state_dict().items():
        torch.testing.assert_close(value, state[f'backbone.{key}'], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match='allow-pickle'):  # a user's file: weights only
        load_shared_model(config, checkpoint, 'cpu')
    # An explicit config runs with random weights unless a checkpoint is given.
    assert tool.model_source(tool.parse_args([CONFIG]))[1:] == (None, False)
    (tmp_path / 'last_checkpoint').write_text('gone.pth')
    assert tool.model_source(tool.parse_args([]))[1] is None


def test_cli_serves_the_page_on_loopback(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, 'tools/annotate.py', CONFIG, '--port', str(port),
                             '--out', str(tmp_path / 'out'), '--target-sizes', '256', '512'],
                            cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.time() + 90, None
        while health is None:
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, 'server did not answer'
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/health', timeout=2) as r:
                    health = json.load(r)
            except OSError:
                time.sleep(0.3)
        assert health['status'] == 'ok' and health['device'] == 'cpu'
        assert 'random weights' in health['model'] and 'RANDOM' in health['warning']
        assert health['target_sizes'] == [256, 512] and health['default_target_size'] == 256
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=5) as r:
            assert 'mmhrsam annotate' in r.read().decode()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert 'RANDOM weights' in output and f'http://127.0.0.1:{port}' in output
    assert (tmp_path / 'out').is_dir()

"""IterationRecordHook: per-iteration loss and clock, wall-clock and steady throughput."""
import json
import types

import torch

import mmhrsam.engine.hooks as hooks_module
from mmhrsam.engine import IterationRecordHook


def test_record_and_throughput_against_hand_computed_values(tmp_path, monkeypatch):
    # Five iterations at clock readings 0, 1, 2, 3, 13 s (a 10 s checkpoint write before the last).
    clock = iter([0.0, 1.0, 2.0, 3.0, 13.0])
    monkeypatch.setattr(hooks_module.time, 'perf_counter', lambda: next(clock))
    runner = types.SimpleNamespace(iter=0, work_dir=str(tmp_path),
                                   train_dataloader=types.SimpleNamespace(batch_size=4))
    hook = IterationRecordHook(warmup=1, cuda_sync=False)
    for i, loss in enumerate([5.0, 4.0, 3.0, 2.0, 1.0]):
        runner.iter = i
        hook.after_train_iter(runner, i, outputs=dict(loss=torch.tensor(loss)))
    hook.after_train(runner)
    record = json.loads((tmp_path / 'iteration_record.json').read_text())
    assert record['iterations'] == [1, 2, 3, 4, 5] and record['loss'] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert record['time_s'] == [0.0, 1.0, 2.0, 3.0, 13.0]
    # timed: iterations 2..5 (iteration 1 is the warm-up; its reading starts the clock): 4 x 4 images / 13 s
    assert record['images_per_s'] == 16 / 13
    # steady: 4 images over the median step (1, 1, 1, 10 -> 1 s)
    assert record['images_per_s_steady'] == 4.0
    assert record['timed_iterations'] == [2, 5]

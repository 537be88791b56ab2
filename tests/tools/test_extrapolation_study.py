"""tools/analysis/extrapolation_study.py end to end in its CPU-sized mode (--tiny): three
trainings, click evaluations at two sizes, attention scores, JSON, tables and PNGs.

Independent checks: NoC@85/90 and the mIoU curve recomputed here from the per-instance IoUs
after every click, and every token's top-1 attention score bounded below by 1 / (number of keys
it can see): 1/64 and 1/256 for global attention on 8x8 and 16x16 tokens, 1/16 for 4x4 windows
(with or without KV-only padding, a window holds at most 16 keys).
"""
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
spec = importlib.util.spec_from_file_location('extrapolation_study',
                                              os.path.join(ROOT, 'tools/analysis/extrapolation_study.py'))
study = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = study  # its dataclasses look their module up
spec.loader.exec_module(study)

MODELS = ['global', 'flash-swin', 'hrsam']
SIZES = ['128', '256']
CLICKS = 5


@pytest.fixture(scope='module')
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp('extrapolation')
    study.main(['run', '--tiny', '--work-dir', str(root / 'work'), '--out', str(root / 'out')])
    with open(root / 'out' / 'extrapolation_study.json') as f:
        return json.load(f), root / 'out'


def noc_by_hand(ious, threshold, max_clicks):
    counts = []
    for row in ious:
        reached = [k for k, iou in enumerate(row, start=1) if iou >= threshold]
        counts.append(reached[0] if reached else max_clicks)
    return sum(counts) / len(counts)


def test_every_model_is_trained_and_evaluated_at_every_size(result):
    data, _ = result
    assert not data['failed'] and not data['skipped']
    assert sorted(data['train']) == sorted(MODELS)
    for model in MODELS:
        assert os.path.isfile(data['train'][model]['checkpoint'])
        assert data['train'][model]['loss_iters'] == [1, 2]
        assert sorted(data['eval'][model]) == SIZES
    instances = data['eval']['global']['128']['instances']
    for model in MODELS:
        for size in SIZES:
            ev = data['eval'][model][size]
            assert len(ev['miou_curve']) == CLICKS and ev['instances'] == instances  # same held-out objects
            assert all(len(row) == CLICKS for row in ev['ious'])


def test_noc_and_miou_recomputed_from_per_instance_ious(result):
    data, _ = result
    for model in MODELS:
        for size in SIZES:
            ev = data['eval'][model][size]
            for t, key in ((0.85, 'NoC@85'), (0.9, 'NoC@90')):
                assert ev['metrics'][key] == pytest.approx(noc_by_hand(ev['ious'], t, CLICKS), abs=1e-9)
            np.testing.assert_allclose(np.mean(ev['ious'], axis=0), ev['miou_curve'], atol=1e-6)


def test_attention_scores_are_bounded_by_the_visible_keys(result):
    data, _ = result
    window = {'128': 16, '256': 16}  # 4x4 windows
    min_keys = {'global': {'128': 64, '256': 256}, 'flash-swin': window, 'hrsam': window}
    for model in MODELS:
        att = data['attention'][model]
        assert len(att['layers']) == 6 and sorted(att['sizes']) == SIZES
        for size in SIZES:
            assert min(att['sizes'][size]['min']) >= 1 / min_keys[model][size] - 1e-6
            assert all(0 < m <= 1 for m in att['sizes'][size]['mean'])


def test_plots_and_tables_are_written(result):
    _, out = result
    names = ['miou_vs_clicks.png', 'noc.png', 'attention_top1_mean.png', 'train_loss.png']
    names += [f'attention_scores_{m}.png' for m in MODELS]
    for name in names:
        assert (out / name).read_bytes()[:4] == b'\x89PNG', name
    table = (out / 'extrapolation_study.md').read_text()
    assert table.count('| Flash Swin | ') == len(SIZES) + 1  # two sizes + the attention row
    assert len(list((out / 'logs').glob('*.log'))) == 3 + 3 * len(SIZES) + 3

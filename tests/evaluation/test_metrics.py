"""noc_metrics and ClickMetric against hand-computed values; files written by ClickMetric."""
import csv
import json
import pickle

import numpy as np
import pytest
import torch

from mmhrsam.evaluation import ClickMetric, noc_metrics, noc_per_instance, plot_clicks
from mmhrsam.registry import METRICS
from mmhrsam.structures import InteractiveDataSample

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'

# Three instances, K = 4 clicks, by hand:
#   A reaches .85 at click 2, .90 at 3, .95 at 4.
#   B starts exactly at 0.90 (>= counts), never reaches .95.
#   C reaches .85 only at click 4 (0.851), never .90 / .95.
IOUS = [[0.50, 0.86, 0.91, 0.96],
        [0.90, 0.92, 0.93, 0.94],
        [0.20, 0.30, 0.84, 0.851]]
# max_clicks = 20 (K < max_clicks: a threshold never reached counts 20):
#   NoC@85 = (2 + 1 + 4) / 3, NoC@90 = (3 + 1 + 20) / 3 = 8, NoC@95 = (4 + 20 + 20) / 3
#   NoF@90 = 1 (C), NoF@95 = 2 (B, C)
#   mIoU@k = column means.
EXPECTED_20 = {'NoC@85': 7 / 3, 'NoC@90': 8.0, 'NoC@95': 44 / 3, 'NoF@90': 1, 'NoF@95': 2,
               'mIoU@1': 1.6 / 3, 'mIoU@2': 2.08 / 3, 'mIoU@3': 2.68 / 3, 'mIoU@4': 2.751 / 3}


def assert_metrics(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
        assert type(got[key]) is (int if key.startswith('NoF') else float), key


def test_noc_metrics_hand_computed():
    assert_metrics(noc_metrics(np.array(IOUS)), EXPECTED_20)


def test_budget_smaller_than_k():
    """max_clicks = 3 < K = 4: click 4 is outside the budget, misses count 3.
    NoC@85 = (2 + 1 + 3) / 3 = 2, NoC@90 = (3 + 1 + 3) / 3, NoC@95 = (3 + 3 + 3) / 3 = 3;
    NoF@90 = 1, NoF@95 = 3 (A's 0.96 comes at click 4)."""
    got = noc_metrics(IOUS, max_clicks=3)
    expected = dict(EXPECTED_20, **{'NoC@85': 2.0, 'NoC@90': 7 / 3, 'NoC@95': 3.0, 'NoF@95': 3})
    assert_metrics(got, expected)
    assert noc_per_instance(IOUS, 0.95, max_clicks=3).tolist() == [3, 3, 3]


def test_keys_follow_thresholds():
    got = noc_metrics([[0.5, 0.81]], thresholds=(0.8, 0.9), max_clicks=5)
    assert_metrics(got, {'NoC@80': 2.0, 'NoC@90': 5.0, 'NoF@90': 1, 'mIoU@1': 0.5, 'mIoU@2': 0.81})


@pytest.mark.parametrize('bad', [[0.5, 0.9], [[0.5, 1.2]], [[0.5, -0.1]], [[0.5, np.nan]],
                                 np.zeros((2, 0)), np.zeros((0, 3)), np.zeros((1, 2, 2))])
def test_rejects_bad_ious(bad):
    with pytest.raises(ValueError):
        noc_metrics(bad)


def make_samples(kind):
    """The three IOUS instances as model outputs; A and B with timings."""
    samples = []
    for i, ious in enumerate(IOUS):
        fields = dict(ious=torch.tensor(ious, dtype=torch.float64) if i == 0 else np.array(ious),
                      clicks=np.array([[5, 6, 1]] * 4))
        if i < 2:  # A: 0.1 s + 4 x 10 ms; B: 0.2 s + 4 x 20 ms
            fields.update(encoder_time=0.1 * (i + 1), decoder_times=[0.01 * (i + 1)] * 4)
        meta = dict(img_id=f'img{i // 2}', instance_id=str(i))
        if kind == 'sample':
            samples.append(InteractiveDataSample(metainfo=meta, **fields))
        elif kind == 'dict':
            samples.append(dict(fields, **meta))
        else:  # a dict with a 'metainfo' entry, as BaseDataElement.to_dict() gives
            samples.append(dict(fields, metainfo=meta))
    return samples


def run_metric(samples, **kwargs):
    metric = METRICS.build(dict(type='ClickMetric', **kwargs))
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    pickle.loads(pickle.dumps(metric.results))  # gathered across ranks by pickling
    return metric.evaluate(size=len(samples))


@pytest.mark.parametrize('kind', ['sample', 'dict', 'metainfo_dict'])
def test_click_metric_summary(kind):
    got = run_metric(make_samples(kind), miou_at=(1, 3, 20))
    expected = {f'click/{k}': v for k, v in EXPECTED_20.items() if not k.startswith('mIoU')}
    expected.update({'click/mIoU@1': EXPECTED_20['mIoU@1'], 'click/mIoU@3': EXPECTED_20['mIoU@3']})
    assert set(got) == set(expected) | {'click/num_instances'}  # no timing for C: no SPC
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)
    assert got['click/num_instances'] == 3


def test_click_metric_spc_and_5_miou(tmp_path):
    """Two timed instances with 20 decoder times each:
    A (0.1 + 20 x 0.010) / 20 = 15 ms, B (0.2 + 20 x 0.020) / 20 = 30 ms -> 22.5 ms;
    extra decoder times beyond 20 are ignored."""
    samples = [dict(ious=np.linspace(0.5, 0.99, 22), encoder_time=0.1, decoder_times=[0.01] * 22,
                    img_id='a', instance_id='0'),
               dict(ious=np.linspace(0.3, 0.8, 22), encoder_time=0.2, decoder_times=[0.02] * 20,
                    img_id='b', instance_id='0')]
    got = run_metric(samples, prefix='x', output_dir=str(tmp_path))
    assert got['x/20-SPC'] == pytest.approx(22.5)
    assert got['x/5-mIoU'] == pytest.approx(got['x/mIoU@5'])
    assert got['x/mIoU@5'] == pytest.approx((np.linspace(0.5, 0.99, 22)[4] + np.linspace(0.3, 0.8, 22)[4]) / 2)
    assert 'x/mIoU@2' not in got and 'x/mIoU@20' in got


def test_click_metric_files(tmp_path):
    out = tmp_path / 'eval'
    run_metric(make_samples('sample'), output_dir=str(out))
    summary = json.loads((out / 'summary.json').read_text())
    assert_metrics({k: v for k, v in summary['metrics'].items() if k in EXPECTED_20}, EXPECTED_20)
    assert summary['metrics']['num_instances'] == 3
    assert summary['miou_curve'] == pytest.approx([EXPECTED_20[f'mIoU@{k}'] for k in range(1, 5)])
    assert summary['thresholds'] == [0.85, 0.9, 0.95] and summary['max_clicks'] == 20
    with open(out / 'per_instance.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['img_id', 'instance_id', 'NoC@85', 'NoC@90', 'NoC@95',
                       'iou_1', 'iou_2', 'iou_3', 'iou_4']
    assert [r[:5] for r in rows[1:]] == [['img0', '0', '2', '3', '4'], ['img0', '1', '1', '1', '20'],
                                         ['img1', '2', '4', '20', '20']]
    assert float(rows[3][8]) == pytest.approx(0.851)
    assert (out / 'miou_vs_clicks.png').read_bytes()[:8] == PNG_SIGNATURE


def test_no_files_without_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_metric(make_samples('dict'))
    assert list(tmp_path.iterdir()) == []


def test_missing_ious_is_an_error():
    metric = ClickMetric()
    with pytest.raises(KeyError):
        metric.process({}, [dict(img_id='a')])


def test_plot_clicks(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    gt = np.zeros((60, 80), dtype=bool)
    gt[10:40, 20:60] = True
    pred = np.zeros_like(gt)
    pred[15:45, 25:65] = True
    path = tmp_path / 'clicks.png'
    plot_clicks(image, gt, pred, [(25, 40, 1), (42, 62, 0)], str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_click_metric_reports_each_process_timing(monkeypatch):
    """Instances clicked by two processes: A (rank 0) 15 ms and B (rank 1) 30 ms as in the
    test above; each rank's own 20-SPC is reported beside the overall 22.5 ms."""
    import mmhrsam.evaluation.metrics as metrics_module
    metric = metrics_module.ClickMetric(max_clicks=20)
    for rank, (enc, dec, name) in enumerate([(0.1, 0.01, 'a'), (0.2, 0.02, 'b')]):
        monkeypatch.setattr(metrics_module, 'get_rank', lambda rank=rank: rank)
        metric.process(None, [dict(ious=np.full(20, 0.5), encoder_time=enc, decoder_times=[dec] * 20,
                                   img_id=name, instance_id='0')])
    got = metric.compute_metrics(metric.results)
    assert got['20-SPC'] == pytest.approx(22.5)
    assert got['20-SPC@rank0'] == pytest.approx(15.0) and got['20-SPC@rank1'] == pytest.approx(30.0)

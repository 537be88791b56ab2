"""tools/analysis/benchmark_training.py: option checks, the op counter, one tiny CPU run."""
import json
import sys

import pytest
import torch

from tool_loader import load_tool


bt = load_tool('tools/analysis/benchmark_training.py', 'benchmark_training')


def test_variants_are_checked():
    parse = lambda *a: bt.finalize_args(bt.build_parser().parse_args(['--device', 'cpu', *a]))  # noqa: E731
    assert parse('--variants', 'eager', 'compile,fused').variants == [('eager', ), ('compile', 'fused')]
    with pytest.raises(ValueError, match='options are'):
        parse('--variants', 'fast')
    with pytest.raises(ValueError, match='alone'):
        parse('--variants', 'eager,fused')


def test_op_counter_counts_computing_ops_not_views():
    x = torch.ones(4)
    with bt.OpCounter() as counter:
        y = (x.view(2, 2) + 1).t().reshape(4)  # add (+ reshape's copy of the transposed view)
        y.sum()
    assert counter.count == 3  # add, clone (reshape of a non-contiguous tensor), sum


def test_failures_and_the_time_limit_become_rows():
    def fail():
        raise RuntimeError('CUDA out of memory')

    clock = bt.Clock(60)
    assert bt.guarded('distill', ('compile', ), clock, fail) == dict(
        case='distill', variant='compile', skipped='error: RuntimeError: CUDA out of memory')
    assert bt.guarded('distill', ('eager', ), bt.Clock(5), lambda: {})['skipped'] == 'time limit'


def test_tiny_cpu_run(tmp_path):
    out = tmp_path / 'bt.json'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = bt.main(['--tiny', '--device', 'cpu', '--iters', '1', '--step-iters', '1', '--profile-iters', '1',
                          '--workers', '0', '--out', str(out)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved['tiny'] and [r['case'] for r in saved['results']] == ['quickstart', 'click-vitb', 'distill']
    rate = saved['matmul']['flops_per_s']
    assert saved['matmul']['seconds'] == pytest.approx(2 * saved['matmul']['size']**3 / rate)
    for r in saved['results']:
        assert r['median_s'] > 0 and r['ops_per_step'] > 100
        assert r['images_per_s'] == pytest.approx(r['batch'] / r['median_s'])
        assert set(r['profile']['per_step']) >= {'kernel_launches', 'stream_synchronizations', 'memcpy_calls'}
    # MFU as documented: 3 x forward FLOPs of the encoder (count_flops.py) x batch / time / rate
    encoder = bt.load_config(bt.DISTILL, True, 'distill').model.backbone.to_dict()
    forward = sys.modules['count_flops'].count_encoder(encoder, 256)['flops']
    for r in saved['results'][1:]:
        assert r['model_flops_per_step'] == 3 * forward * r['batch']
        assert r['mfu'] == pytest.approx(r['model_flops_per_step'] / r['median_s'] / rate)
    assert result['results'][0]['num_workers'] == 0  # --workers 0 overrides the config's 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_tiny_cuda_run_counts_launches_and_syncs(tmp_path):
    result = bt.main(['--tiny', '--device', 'cuda', '--cases', 'quickstart', 'distill', '--variants', 'eager',
                      'fused,no_scaler', '--profile-iters', '1', '--out', str(tmp_path / 'bt.json')])
    rows = result['results']
    assert [r['case'] for r in rows] == ['quickstart', 'quickstart', 'distill', 'distill']
    for r in rows:
        assert 'skipped' not in r, r
        assert r['profile']['per_step']['kernel_launches'] > 50
    # one fused AdamW kernel per parameter group instead of several foreach ops: fewer operators
    assert rows[1]['ops_per_step'] < rows[0]['ops_per_step'] and rows[3]['ops_per_step'] < rows[2]['ops_per_step']

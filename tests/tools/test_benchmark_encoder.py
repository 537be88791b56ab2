"""tools/analysis/benchmark_encoder.py: planning, one tiny CPU run, breakdown, target checks."""
import json

import pytest
import torch

from tool_loader import load_tool


be = load_tool('tools/analysis/benchmark_encoder.py', 'benchmark_encoder')


def cpu_args(*argv):
    return be.finalize_args(be.build_parser().parse_args(['--device', 'cpu', *argv]))


def test_cpu_defaults_and_aliases():
    args = cpu_args()
    assert args.models == ['HRSAM', 'SAM-ViT-B'] and args.sizes == [1024]
    assert args.precision == 'fp32' and args.breakdown_size == 1024
    args = cpu_args('--models', 'hrsamplusplus', 'SAM-ViT-H', 'kvpad')
    assert args.models == ['HRSAM++', 'SAM-ViT-H', 'KVPadSwin']
    with pytest.raises(SystemExit):
        cpu_args('--models', 'NoSuchEncoder')


def test_plan_skips_with_reasons():
    args = cpu_args('--models', 'HRSAM', 'Global', 'SAM-ViT-H', '--sizes', '1024', '2048', '--cuda-graph',
                    '--breakdown')
    cases = be.plan(args, torch.device('cpu'))
    by_key = {(c.model, c.size, c.mode): c for c in cases}
    assert len(cases) == 3 * 2 * 3 + 1  # eager, fast (on by default), graph
    assert by_key['HRSAM', 1024, 'eager'].skip == ''
    assert 'default path is the eager forward' in by_key['HRSAM', 1024, 'fast'].skip
    cuda_cases = {(c.model, c.size, c.mode): c for c in be.plan(args, torch.device('cuda'))}
    assert cuda_cases['HRSAM', 1024, 'fast'].skip == ''
    assert 'not capturable' in cuda_cases['SAM-ViT-H', 1024, 'fast'].skip
    assert 'CUDA graphs' in by_key['HRSAM', 1024, 'graph'].skip
    assert '--max-global-tokens' in by_key['Global', 2048, 'eager'].skip  # 16384 tokens > 4096 on CPU
    assert by_key['Global', 1024, 'eager'].skip == ''
    # SAM ViT-H at 1024²: 16 x 4096² fp32 scores ~ 3 GiB < 8 GiB; at 2048² skipped.
    assert by_key['SAM-ViT-H', 1024, 'eager'].skip == ''
    assert by_key['SAM-ViT-H', 2048, 'eager'].skip
    # The breakdown follows HRSAM's cases at its size (the model is reused).
    i = cases.index(by_key['HRSAM', 1024, 'breakdown'])
    assert cases[i - 1][:3] == ('HRSAM', 1024, 'graph') and cases[i + 1][:3] == ('HRSAM', 2048, 'eager')
    args = cpu_args('--models', 'SAM-ViT-H', '--sizes', '2048', '--max-global-tokens', '65536',
                    '--max-attn-matrix-gib', '4')
    skip = be.plan(args, torch.device('cpu'))[0].skip
    assert 'attention scores' in skip and '--max-attn-matrix-gib' in skip


def test_tiny_run_rows_json_breakdown(tmp_path, one_thread):
    out = tmp_path / 'bench.json'
    result = be.main(['--device', 'cpu', '--tiny', '--models', 'HRSAM', 'HRSAM++', 'SAM-ViT-B', '--sizes', '128',
                      '--repeats', '3', '--warmup', '1', '--cuda-graph', '--breakdown', '--breakdown-models',
                      'HRSAM', 'HRSAM++', '--out', str(out)])
    rows = result['results']
    data = json.loads(out.read_text())
    assert data['results'] == json.loads(json.dumps(rows)) and data['env']['tiny'] is True
    assert {'env', 'results', 'targets'} <= data.keys()

    eager = [r for r in rows if r['mode'] == 'eager']
    assert [r['model'] for r in eager] == ['HRSAM', 'HRSAM++', 'SAM-ViT-B']
    for r in eager:
        assert r['status'] == 'ok', r
        assert r['ms'] > 0 and r['ms_min'] <= r['ms'] and 1 <= r['repeats'] <= 3
        assert r['size'] == 128 and r['tokens'] == 64 and r['device'] == 'cpu' and r['precision'] == 'fp32'
        assert r['params_m'] > 0 and r['weights_mib'] > 0 and r['input_mib'] > 0
        assert r['peak_mib'] is None  # no device memory statistics on CPU
    graphs = [r for r in rows if r['mode'] == 'graph']
    assert len(graphs) == 3 and all(r['status'] == 'skipped' and 'CUDA' in r['reason'] for r in graphs)

    breakdowns = {r['model']: r for r in rows if r['mode'] == 'breakdown'}
    assert set(breakdowns) == {'HRSAM', 'HRSAM++'}
    for name, r in breakdowns.items():
        parts = r['parts_ms']
        assert set(parts) == set(be.BREAKDOWN_PARTS)
        assert all(parts[p] > 0 for p in be.BREAKDOWN_PARTS), (name, parts)  # every part was hooked
        assert r['measured_ms'] == pytest.approx(sum(parts.values()), abs=1e-3)
        assert r['measured_ms'] + r['unaccounted_ms'] == pytest.approx(r['total_ms'], abs=1e-3)
        assert r['rest_ms'] == pytest.approx(parts['embed'] + parts['fusion'], abs=1e-3)
        # The parts are timed inside the same forward: never more than the total, and on a
        # tiny model (Python overhead between parts is relatively large) still most of it.
        assert 0.6 <= r['coverage'] <= 1.02, (name, r)
        assert r['ms'] == r['total_ms'] and r['unhooked_ms'] > 0
    # Instrumentation is removed afterwards: no hooks, no method wrappers left.
    runner = be.Runner(be.finalize_args(be.build_parser().parse_args(['--device', 'cpu', '--tiny'])),
                       torch.device('cpu'))
    model, _ = runner.model('HRSAM++', 128)
    recorder = be.PartRecorder(torch.device('cpu'))
    remove = be.instrument(model, recorder)
    assert 'fuse_scales' in model.__dict__ and model.ms_mamba_blocks[0]._forward_hooks
    model(torch.randn(1, 3, 128, 128))
    assert recorder.collect().keys() == set(be.BREAKDOWN_PARTS)
    remove()
    assert 'fuse_scales' not in model.__dict__ and 'embed_inputs' not in model.__dict__
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_failures_become_rows(monkeypatch):
    args = cpu_args('--tiny', '--models', 'HRSAM', '--sizes', '128', '--compile', '--no-fast', '--repeats', '1')
    runner = be.Runner(args, torch.device('cpu'))

    def boom(self, row, model, x):
        raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 64 GiB')

    monkeypatch.setattr(be.Runner, '_run_eager', boom)
    rows = [runner.run(case) for case in be.plan(args, torch.device('cpu'))]
    assert [r['mode'] for r in rows] == ['eager', 'compile']
    assert rows[0]['status'] == 'error' and 'OutOfMemoryError' in rows[0]['reason']
    assert rows[1]['status'] == 'skipped' and rows[1]['reason'].startswith('eager run failed')
    assert 'error' in be.format_table(rows) and 'skip' in be.format_pivot(rows)


def row(model, size, mode, ms, device='cuda', peak_mib=None):
    return dict(model=model, size=size, mode=mode, device=device, status='ok', ms=ms, peak_mib=peak_mib,
                weights_mib=368.0, input_mib=192.0, cache_mib=20.0,
                act_peak_mib=None if peak_mib is None else peak_mib - 580.0)


def test_target_checks_pass_and_miss():
    passing = [
        row('FlashSwin', 2048, 'eager', 10.0), row('SAM-ViT-H', 1024, 'eager', 55.6),
        row('HRSAM', 2048, 'eager', 20.0), row('HRSAM++', 2048, 'eager', 26.0),
        row('HRSAM', 4096, 'eager', 80.0, peak_mib=3500.0),
        row('HRSAM', 1024, 'eager', 15000.0, device='cpu'),
    ]
    checks = be.target_checks(passing)
    assert [c['id'] for c in checks] == ['1', '2', '3', '4', '5']
    assert all(c['status'] == 'PASS' for c in checks), checks
    assert checks[0]['value'] == pytest.approx(10 / 55.6, abs=1e-4)
    assert checks[3]['value'] == pytest.approx(3500 / 1024, abs=1e-4)

    missing = [
        row('FlashSwin', 2048, 'graph', 12.0), row('SAM-ViT-H', 1024, 'graph', 55.0),  # 0.218 > 0.2
        row('HRSAM', 2048, 'graph', 20.0), row('HRSAM++', 2048, 'graph', 27.2),  # 1.36 > 1.35
        row('HRSAM', 4096, 'graph', 92.0),  # 4.6 > 4.5; graph rows carry no memory
        row('HRSAM', 4096, 'eager', 92.0, peak_mib=4200.0),  # 4.10 GiB > 4 GiB
        row('HRSAM', 1024, 'eager', 20000.0, device='cpu'),  # not under 20 s
    ]
    checks = be.target_checks(missing)
    assert sorted((c['id'], c['mode']) for c in checks) == [
        ('1', 'graph'), ('2', 'graph'), ('3', 'graph'), ('4', 'eager'), ('5', 'eager')]
    assert all(c['status'] == 'MISS' for c in checks), checks
    text = be.format_checks(checks)
    assert text.count('[MISS]') == 5 and '4.600' in text

    # Rows that were skipped or failed, or the wrong device, do not count.
    other = [dict(r, status='skipped') for r in passing[:2]] + [dict(passing[2], device='cpu'), passing[3]]
    assert be.target_checks(other) == []
    assert 'none of the needed rows' in be.format_checks([])


def test_fast_path_checks():
    rows = [row('HRSAM', 2048, 'fast', 9.0), row('SAM-ViT-H', 1024, 'eager', 60.0),
            row('HRSAM++', 2048, 'fast', 11.7), dict(row('HRSAM', 4096, 'fast', 37.0, peak_mib=3000.0), cache_mib=None)]
    assert len(be.target_checks(rows)) == 3  # fast rows carry no separate cache figure (None)
    checks = {c['id']: c for c in be.fast_path_checks(rows)}
    assert {k: c['status'] for k, c in checks.items()} == {'F1': 'PASS', 'F2': 'PASS', 'F3': 'MISS',
                                                           'F4': 'MISS', 'F5': 'PASS'}
    assert checks['F2']['value'] == pytest.approx(0.15) and checks['F3']['value'] == pytest.approx(1.3)
    assert checks['F4']['value'] == pytest.approx(37 / 9, abs=1e-4)
    # a 'fast' SAM row, where there is one, is preferred over its eager row
    checks = {c['id']: c for c in be.fast_path_checks(rows + [row('SAM-ViT-H', 1024, 'fast', 45.0)])}
    assert checks['F2']['value'] == pytest.approx(0.2) and checks['F2']['status'] == 'MISS'


def test_time_limit_skips_the_rest(tmp_path):
    out = tmp_path / 'limited.json'
    result = be.main(['--device', 'cpu', '--tiny', '--models', 'HRSAM', 'SAM-ViT-B', '--sizes', '128',
                      '--no-fast', '--time-limit-s', '0', '--out', str(out)])
    rows = result['results']
    assert len(rows) == 2 and all(r['status'] == 'skipped' and '--time-limit-s' in r['reason'] for r in rows)
    assert json.loads(out.read_text())['results'][1]['reason'] == rows[1]['reason']


def test_sam_lightening_is_listed_and_runs_tiny_on_cpu(tmp_path, one_thread):
    assert cpu_args('--models', 'sam-lightening', 'lightening').models == ['SAM-Lightening'] * 2
    assert 'SAM-Lightening' in be.CUDA_MODELS
    result = be.main(['--device', 'cpu', '--tiny', '--models', 'SAM-Lightening', '--sizes', '128', '256',
                      '--repeats', '1', '--warmup', '0', '--breakdown', '--breakdown-models', 'SAM-Lightening',
                      '--out', str(tmp_path / 'bench.json')])
    rows = {(r['size'], r['mode']): r for r in result['results']}
    for size in (128, 256):  # one model, its position embedding resized to each grid
        r = rows[size, 'eager']
        assert r['status'] == 'ok' and r['type'] == 'SAMLightening', r
        model, _ = be.Runner(cpu_args('--tiny'), torch.device('cpu')).model('SAM-Lightening', size)
        nbytes = sum(t.numel() * 4 for t in [*model.parameters(), *model.buffers()])  # fp32
        assert r['weights_mib'] == pytest.approx(nbytes / 2 ** 20, abs=0.05)
    parts = rows[128, 'breakdown']['parts_ms']
    assert parts['attention'] > 0 and parts['mlp'] > 0 and parts['embed'] > 0 and parts['fusion'] > 0
    assert 'wts MiB' in be.format_table(result['results'])


def test_sam_lightening_claims_from_the_run():
    rows = [dict(row('SAM-Lightening', 1024, 'eager', 5.0, peak_mib=200.0), weights_mib=90.0, act_peak_mib=80.0),
            dict(row('SAM-ViT-H', 1024, 'eager', 200.0, peak_mib=8000.0), weights_mib=2430.0)]
    claims = {c['id']: c for c in be.lightening_claims(rows)}
    assert [claims[k]['status'] for k in ('L1', 'L2', 'L3', 'L4')] == ['PASS', 'PASS', 'PASS', 'PASS']
    assert '40.0x' in claims['L2']['detail']  # 200 / 5
    assert claims['L3']['value'] == pytest.approx(200 * 2 ** 20 / 1e6, abs=1e-3)  # MiB -> MB
    assert 'weights 94 MB' in claims['L3']['detail'] and 'activation peak 84 MB' in claims['L3']['detail']
    assert claims['L4']['value'] == pytest.approx(200 / 8000, abs=1e-4)
    slow = [dict(rows[0], ms=10.0, peak_mib=400.0), rows[1]]  # 20x, 419 MB, 5 %
    claims = {c['id']: c for c in be.lightening_claims(slow)}
    assert [claims[k]['status'] for k in ('L1', 'L2', 'L3', 'L4')] == ['MISS'] * 4
    assert be.lightening_claims([rows[1]]) == [] and be.lightening_claims([dict(rows[0], device='cpu')]) == []

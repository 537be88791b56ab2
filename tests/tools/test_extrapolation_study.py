"""tools/analysis/extrapolation_study.py end to end in its CPU-sized mode (--tiny): three
trainings, click evaluations at two sizes, attention scores, JSON, tables and PNGs; the run's
--bundle archive, and ``collect`` rebuilding the study from the bundle's work dir alone.

Independent checks: the rebuilt JSON equals the one the run wrote as each job finished (read
from the tools' outputs at another time, from another copy, without checkpoints); NoC@85/90,
the mIoU curve and the table's 5-mIoU change recomputed here from the per-instance IoUs after
every click; and every token's top-1 attention score bounded below by 1 / (number of keys
it can see): 1/64 and 1/256 for global attention on 8x8 and 16x16 tokens, 1/16 for 4x4 windows
(with or without KV-only padding, a window holds at most 16 keys).
"""
import json
import os
import tarfile

import numpy as np
import pytest
from tool_loader import load_tool

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
study = load_tool('tools/analysis/extrapolation_study.py', 'extrapolation_study',
                  register=True)  # its dataclasses look their module up

MODELS = ['global', 'flash-swin', 'hrsam']
SIZES = ['128', '256']
CLICKS = 5


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('extrapolation')
    study.main(['run', '--tiny', '--work-dir', str(root / 'work'), '--out', str(root / 'out'),
                '--bundle', str(root / 'bundle.tar.gz')])
    return root


@pytest.fixture(scope='module')
def result(root):
    with open(root / 'out' / 'extrapolation_study.json') as f:
        return json.load(f), root / 'out'


@pytest.fixture(scope='module')
def collected(root):
    """``collect`` from the bundle's work dir, unpacked elsewhere: no checkpoints, no tool logs."""
    with tarfile.open(root / 'bundle.tar.gz') as tar:
        tar.extractall(root / 'unpacked', filter='data')
    out = root / 'collected'
    study.main(['collect', '--work-dir', str(root / 'unpacked' / 'work_dir'), '--out', str(out)])
    with open(out / 'extrapolation_study.json') as f:
        return json.load(f), out


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
    assert table.count('| Flash Swin | ') == 2 * len(SIZES)  # click and attention rows per size
    data, _ = result
    for model in MODELS:  # 5-mIoU and its relative change, from the per-instance IoUs
        five = [np.mean([row[4] for row in data['eval'][model][s]['ious']]) for s in SIZES]
        label = data['settings']['models'][model]['label']
        row = next(line for line in table.splitlines() if line.startswith(f'| {label} | 256² | '))
        cells = row.split(' | ')  # model, size, mIoU@1, 5-mIoU, Δ 5-mIoU, ...
        assert cells[3:5] == [f'{five[1]:.3f}', f'{100 * (five[1] / five[0] - 1):+.1f} %'], row
    assert len(list((out / 'logs').glob('*.log'))) == 3 + 3 * len(SIZES) + 3


def test_bundle_holds_out_and_work_dir_without_checkpoints(root):
    with tarfile.open(root / 'bundle.tar.gz') as tar:
        names = set(tar.getnames())
    assert not [n for n in names if n.endswith('.pth')]
    assert len(list((root / 'work').glob('*/train/*.pth'))) == 3  # they were there to leave out
    expected = {f'out/{p.relative_to(root / "out")}' for p in (root / 'out').rglob('*')}
    expected |= {f'work_dir/{p.relative_to(root / "work")}' for p in (root / 'work').rglob('*') if p.suffix != '.pth'}
    assert names == expected | {'out', 'work_dir'}
    assert 'out/extrapolation_study.json' in names and 'work_dir/hrsam/train/last_checkpoint' in names


def test_collect_rebuilds_the_runs_record(result, collected):
    original, _ = result
    data, _ = collected
    for key in ('models', 'iters', 'eval_sizes', 'score_sizes', 'score_images', 'precision', 'amp'):
        assert data['settings'][key] == original['settings'][key], key
    assert data['settings']['iters'] == 2 and data['settings']['amp'] is False
    for key in ('devices', 'tiny', 'cfg_options'):
        assert data['settings'][key] is None and key in data['collected']['missing']
    for model in MODELS:
        for key in ('checkpoint', 'loss_iters', 'loss'):
            assert data['train'][model][key] == original['train'][model][key]
        # log timestamps leave out start-up: a lower bound of the run's wall time (1 s steps)
        assert 0 <= data['train'][model]['wall_s'] <= original['train'][model]['wall_s'] + 1
        for size in SIZES:
            ev, ref = data['eval'][model][size], original['eval'][model][size]
            assert {k: v for k, v in ev.items() if k != 'wall_s'} == {k: v for k, v in ref.items() if k != 'wall_s'}
            assert 0 <= ev['wall_s'] <= ref['wall_s'] + 1
        att, ref = data['attention'][model], original['attention'][model]
        assert {k: v for k, v in att.items() if k != 'wall_s'} == {k: v for k, v in ref.items() if k != 'wall_s'}
        assert att['wall_s'] is None and f'attention/{model}/wall_s' in data['collected']['missing']
    assert 0 < data['total_wall_s'] <= original['total_wall_s'] + 1


def test_collect_writes_the_tables_and_plots(result, collected):
    _, out = result
    _, rebuilt = collected
    for name in ['miou_vs_clicks.png', 'noc.png', 'attention_top1_mean.png', 'train_loss.png']:
        assert (rebuilt / name).read_bytes()[:4] == b'\x89PNG', name
    for model in MODELS:  # the tool's own histogram figure, copied from the work dir
        name = f'attention_scores_{model}.png'
        assert (rebuilt / name).read_bytes() == (out / name).read_bytes()
    tables = (out / 'extrapolation_study.md').read_text().split('Wall times')[0]
    assert (rebuilt / 'extrapolation_study.md').read_text().startswith(tables)


@pytest.mark.parametrize('argv', [['collect', '--out', 'o', '--iters', '5'], ['plot', '--out', 'o', '--tiny'],
                                  ['run', '--tiny', '--out', 'o', '--bundle', 'b.zip']])
def test_conflicting_options_are_errors(argv):
    with pytest.raises(SystemExit):
        study.parse_args(argv)

"""tools/train.py, tools/test.py, tools/dist_train.sh and tools/dist_test.sh end to end on CPU.

A small version of the quickstart config (tiny HRSAM, synthetic scenes at ~100 px, a few
iterations) keeps each run to seconds. Distributed runs use torchrun with 2 CPU processes
and gloo, exactly as a user's ``bash tools/dist_train.sh CONFIG 2`` on a machine without GPUs.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CONFIG = os.path.join(ROOT, 'configs', 'quickstart', 'hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py')
SMALL = [
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.image_size=[96,128]', 'train_dataloader.dataset.num_images=64',
    'test_dataloader.num_workers=0', 'test_dataloader.dataset.image_size=[96,128]',
    'test_dataloader.dataset.num_images=4', 'test_cfg.max_clicks=5', 'test_cfg.num_vis=1',
    'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=5',
]


def run_tool(args, env_extra=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', PORT=str(29500 + os.getpid() % 1000))
    env.update(env_extra or {})
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def train(work_dir, iters, *extra):
    return run_tool([sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir), *extra, '--cfg-options',
                     f'train_cfg.max_iters={iters}', *SMALL])


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('train')
    train(work_dir, 4)
    return work_dir


def test_training_writes_checkpoints_that_change_the_weights(trained):
    assert (trained / 'iter_2.pth').is_file() and (trained / 'iter_4.pth').is_file()
    first, last = weights(trained / 'iter_2.pth'), weights(trained / 'iter_4.pth')
    assert first.keys() == last.keys() and any(k.startswith('head.') for k in last)
    assert any(not torch.equal(first[k], last[k]) for k in last)


def test_resume_continues_exactly(trained, tmp_path):
    """2 iterations, stop, resume to 4 == 4 uninterrupted iterations, bit for bit."""
    train(tmp_path, 2)
    train(tmp_path, 4, '--resume')
    resumed, straight = weights(tmp_path / 'iter_4.pth'), weights(trained / 'iter_4.pth')
    assert resumed.keys() == straight.keys()
    different = [k for k in straight if not torch.equal(resumed[k], straight[k])]
    assert not different, different[:5]


def test_evaluation_writes_metrics_files_and_drawings(trained, tmp_path):
    run_tool([sys.executable, 'tools/test.py', CONFIG, str(trained / 'iter_4.pth'), '--work-dir', str(tmp_path),
              '--cfg-options', *SMALL])
    (run_dir, ) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / 'summary.json').read_text())
    for key in ('NoC@85', 'NoC@90', 'NoC@95', 'NoF@90', 'NoF@95', '5-SPC'):
        assert key in json.dumps(summary), key
    rows = (run_dir / 'per_instance.csv').read_text().strip().splitlines()
    assert len(rows) >= 2
    assert (run_dir / 'miou_vs_clicks.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert len(list((run_dir / 'vis').glob('*.png'))) == 1


def test_two_process_training_keeps_replicas_in_sync(tmp_path):
    config = tmp_path / 'with_sync_check.py'
    config.write_text(f"_base_ = [{CONFIG!r}]\n"
                      "custom_hooks = [dict(type='ParamSyncCheckHook', interval=1, record=True)]\n")
    run_tool(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(tmp_path), '--cfg-options',
              'train_cfg.max_iters=3', *SMALL])
    ranks = [json.loads((tmp_path / f'param_checksums_rank{r}.json').read_text()) for r in (0, 1)]
    assert [it for it, _ in ranks[0]] == [1, 2, 3]
    assert ranks[0] == ranks[1]  # identical weights on both processes after every iteration
    assert ranks[0][0][1] != ranks[0][-1][1]  # and they did train
    assert (tmp_path / 'iter_2.pth').is_file()


def test_two_process_evaluation_equals_one_process(trained, tmp_path):
    ckpt = str(trained / 'iter_4.pth')
    run_tool([sys.executable, 'tools/test.py', CONFIG, ckpt, '--work-dir', str(tmp_path / 'one'), '--cfg-options',
              *SMALL])
    run_tool(['bash', 'tools/dist_test.sh', CONFIG, ckpt, '2', '--work-dir', str(tmp_path / 'two'),
              '--cfg-options', *SMALL])

    def summary(d):
        (run_dir, ) = [p for p in d.iterdir() if p.is_dir()]
        return json.loads((run_dir / 'summary.json').read_text())

    def without_timings(data):
        return dict(data, metrics={k: v for k, v in data['metrics'].items() if 'SPC' not in k})

    one, two = summary(tmp_path / 'one'), summary(tmp_path / 'two')
    assert without_timings(one) == without_timings(two)
    # each process reports its own timing; the overall figure is a mean over both subsets
    per_rank = [two['metrics'][f'5-SPC@rank{r}'] for r in (0, 1)]
    assert min(per_rank) <= two['metrics']['5-SPC'] <= max(per_rank)
    assert not any('@rank' in k for k in one['metrics'])


def released_layout(state):
    """A project checkpoint rewritten in the released HRSAM layout (neck.* prompt encoder with
    pos_embed_layer / point_embeds, decode_head.* mask decoder) with the saved RoPE table of
    the quickstart's 32-channel heads: theta^(-2i / 16), i < 8, float32."""
    out = {}
    for key, value in state.items():
        if key.startswith('head.prompt_encoder.'):
            key = 'neck.' + key[len('head.prompt_encoder.'):]
            key = key.replace('neck.pe_layer.', 'neck.pos_embed_layer.').replace('neck.point_embeddings.',
                                                                               'neck.point_embeds.')
        elif key.startswith('head.mask_decoder.'):
            key = 'decode_head.' + key[len('head.mask_decoder.'):]
        out[key] = value
    out['backbone.rope.freqs'] = torch.tensor([10000 ** (-2 * i / 16) for i in range(8)], dtype=torch.float32)
    return out


def test_released_checkpoint_evaluates_like_the_converted_one_with_the_original_protocol(trained, tmp_path):
    """tools/test.py loads a released-layout checkpoint (with backbone.rope.freqs) strictly and
    gives the same per-instance results as the project-layout one, under --protocol original."""
    released = tmp_path / 'released.pth'
    torch.save({'state_dict': released_layout(weights(trained / 'iter_4.pth')), 'meta': {}}, released)
    tables = []
    for name, ckpt in (('project', trained / 'iter_4.pth'), ('released', released)):
        run_tool([sys.executable, 'tools/test.py', CONFIG, str(ckpt), '--protocol', 'original',
                  '--work-dir', str(tmp_path / name), '--cfg-options', *SMALL, 'test_cfg.num_vis=0'])
        (run_dir, ) = [p for p in (tmp_path / name).iterdir() if p.is_dir()]
        tables.append((run_dir / 'per_instance.csv').read_text())
    assert tables[0] == tables[1] and len(tables[0].splitlines()) >= 2

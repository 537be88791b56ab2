"""The model index (configs/*/metafile.yml): schema, configs that build, parameter counts.

Parameters are counted here independently of tools/analysis/count_flops.py, as
``sum(p.numel())`` of the model each config builds. The FLOPs method is checked against
MMEngine's ``FlopAnalyzer`` on a small SAM ViT that both counters see completely, and the
SDPA formula against hand-computed attention FLOPs.
"""
import glob
import importlib.util
import os

import pytest
import torch
import yaml
from mmengine.config import Config

import mmhrsam.models  # noqa: F401
from mmhrsam.registry import MODELS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
METAFILES = sorted(glob.glob(os.path.join(ROOT, 'configs', '*', 'metafile.yml')))
FAMILIES = {'hrsam', 'hrsam_plusplus', 'baselines', 'sam_lightening'}
SIZES = (1024, 2048, 4096)
MODEL_KEYS = {'Name', 'In Collection', 'Config', 'Metadata', 'Results', 'Weights'}
META_KEYS = {'Parameters', 'Encoder Parameters', 'FLOPs', 'Training Data', 'Training Recipe', 'H200'}


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


MODELS_IN_INDEX = [(os.path.basename(os.path.dirname(p)), m) for p in METAFILES for m in load(p)['Models']]


def test_one_metafile_per_family():
    assert {os.path.basename(os.path.dirname(p)) for p in METAFILES} == FAMILIES


@pytest.mark.parametrize('path', METAFILES, ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_schema(path):
    doc = load(path)
    collections = {c['Name'] for c in doc['Collections']}
    names = [m['Name'] for m in doc['Models']]
    assert len(names) == len(set(names)), 'model names repeat'
    for m in doc['Models']:
        assert MODEL_KEYS <= set(m), (m['Name'], MODEL_KEYS - set(m))
        assert m['In Collection'] in collections
        meta = m['Metadata']
        assert META_KEYS <= set(meta), (m['Name'], META_KEYS - set(meta))
        assert sorted(meta['FLOPs']) == list(SIZES)
        assert all(isinstance(v, int) and v > 0 for v in meta['FLOPs'].values())
        # an encoder whose cost grows with the image: more FLOPs at every larger size
        assert meta['FLOPs'][1024] < meta['FLOPs'][2048] < meta['FLOPs'][4096]
        assert 0 < meta['Encoder Parameters'] <= meta['Parameters']
        if meta['H200'] is not None:
            assert sorted(meta['H200']) == list(SIZES)
            for row in meta['H200'].values():
                assert set(row) == {'eager ms', 'graph ms', 'peak MiB'}
        assert m['Weights'] is None or m['Weights'].startswith('https://')
        if m['Results'] is not None:
            for res in m['Results']:
                assert {'Task', 'Dataset', 'Metrics'} <= set(res) and res['Metrics']


def test_quickstart_results_match_its_summary():
    import json
    summary = json.load(open(os.path.join(ROOT, 'docs', 'results', 'quickstart', 'summary_trained.json')))['metrics']
    trained = [m for _, m in MODELS_IN_INDEX if m['Results']]
    assert [m['Config'] for m in trained] == ['configs/quickstart/hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py']
    for key, value in trained[0]['Results'][0]['Metrics'].items():
        assert value == pytest.approx(summary[key], abs=5e-4), key


@pytest.mark.parametrize('family,entry', MODELS_IN_INDEX, ids=[m['Name'] for _, m in MODELS_IN_INDEX])
def test_config_builds_with_listed_parameters(family, entry):
    path = os.path.join(ROOT, entry['Config'])
    assert os.path.isfile(path), entry['Config']
    cfg = Config.fromfile(path)
    big = cfg.model['backbone'].get('arch') in ('vit-l', 'vit-h')
    # SAM ViT-L / ViT-H weigh 1.2 / 2.5 GB in fp32: their build is checked on the meta device
    with torch.device('meta' if big else 'cpu'):
        model = MODELS.build(cfg.model)
    meta = entry['Metadata']
    assert sum(p.numel() for p in model.parameters()) == meta['Parameters']
    assert sum(p.numel() for p in model.backbone.parameters()) == meta['Encoder Parameters']


def load_count_flops():
    spec = importlib.util.spec_from_file_location('count_flops',
                                                  os.path.join(ROOT, 'tools', 'analysis', 'count_flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flop_count_equals_mmengine_on_a_small_sam_vit():
    """MMEngine counts a multiply-add as one FLOP; SAM's ViT has no SDPA, so it sees everything."""
    from mmengine.analysis import FlopAnalyzer
    cfg = dict(type='SAMViT', arch=dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1, )), img_size=128)
    ours = load_count_flops().count_encoder(cfg, 128)
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    analyzer = FlopAnalyzer(model, (torch.randn(1, 3, 128, 128), ))
    analyzer.unsupported_ops_warnings(False)
    by_op = analyzer.by_operator()
    exact = sum(n for op, n in by_op.items() if op in ('conv', 'linear', 'matmul', 'bmm', 'addmm', 'mm'))
    # MMEngine takes einsum counts (SAM's relative positions) from numpy's einsum_path estimate,
    # a few multiply-adds off an exact count: allowed for here, 1e-5 of the total
    assert exact > 0 and ours['flops'] == pytest.approx(2 * (exact + by_op['einsum']), rel=1e-5)
    assert ours['flops'] >= 2 * exact


def test_sdpa_and_scan_are_counted():
    """A global-attention HRSAM block (SDPA) at a 8 x 8 token grid, hand-counted."""
    counter = load_count_flops()
    dim, heads, tokens, state = 64, 2, 64, 4
    base = dict(type='HRSAM', embed_dim=dim, depth=2, num_heads=heads, num_stages=1, out_channels=32,
                attn_cfg=dict(type='GlobalAttention'))
    without_scan = counter.count_encoder(dict(base, cycle_scan_cfg=None), 128)
    attention = 2 * 2 * tokens * tokens * dim  # (QK^T and PV) x 2 FLOPs x L^2 x C, per block
    sdpa = [n for op, n in without_scan['by_operator'].items() if 'scaled_dot_product' in op]
    assert sdpa == [2 * attention]
    with_scan = counter.count_encoder(dict(base, cycle_scan_cfg=dict(type='CycleScan', d_state=state)), 128)
    # one Cycle-scan: 3 copies x L x C x (7 N + 5)
    assert with_scan['scan_flops'] == 3 * tokens * dim * (7 * state + 5)

"""tools/analysis/benchmark_predictor.py: click protocol, plan order, one tiny CPU run checked by
wrapping the predictors, SAM's tensor path against its NumPy API, target checks by hand."""
import json
from argparse import Namespace

import numpy as np
import pytest
import torch

from mmhrsam.apis.predictor import HRSAMPredictor

from tool_loader import load_tool


bp = load_tool('tools/analysis/benchmark_predictor.py', 'benchmark_predictor')


def test_click_sequence_inside_distinct_alternating():
    points, labels = bp.click_sequence(20, 4000, 3000)
    assert points.shape == (20, 2) and labels.tolist() == [1, 0] * 10
    assert (points[:, 0] >= 0).all() and (points[:, 0] < 4000).all()
    assert (points[:, 1] >= 0).all() and (points[:, 1] < 3000).all()
    assert len({tuple(p) for p in points.tolist()}) == 20  # no click repeated
    # Within 40 % of the half-sides around the centre (2000, 1500), plus flooring.
    assert (np.abs(points - [2000, 1500]) <= [800 + 1, 600 + 1]).all()
    assert np.array_equal(bp.click_sequence(20, 4000, 3000)[0], points)  # fixed
    tiny, _ = bp.click_sequence(5, 3, 2)  # clipped into a tiny image
    assert (tiny >= 0).all() and (tiny[:, 0] <= 2).all() and (tiny[:, 1] <= 1).all()


def test_plan_runs_the_checked_cases_first():
    args = bp.build_parser().parse_args(['--sam-fp32'])
    args.device, args.sizes = 'cuda', [1024, 2048, 4096]  # planning only: no CUDA needed
    cases = bp.plan(args)
    keys = [(c.model, c.size, c.precision) for c in cases]
    assert keys[:4] == [('HRSAM', 2048, 'default'), ('SAM-ViT-H', 1024, 'bf16'), ('SAM2.1-B+', 1024, 'bf16'),
                        ('HRSAM++', 2048, 'default')]
    assert keys[4:] == [('HRSAM', 1024, 'default'), ('HRSAM', 4096, 'default'), ('HRSAM++', 1024, 'default'),
                        ('HRSAM++', 4096, 'default'), ('SAM-ViT-B', 1024, 'bf16'), ('SAM-ViT-H', 1024, 'fp32'),
                        ('SAM-ViT-B', 1024, 'fp32')]  # fp32 baselines last, ViT-H first
    sam2 = cases[2]
    assert sam2.skip == ('' if bp.sam2_available() else 'sam2 not installed')


class Recorder:
    """Wraps a predictor method: records each call's clicks, fed-back logits and result."""

    def __init__(self, monkeypatch, cls, name, points_of, labels_of, prev_of, keep=lambda args, kwargs: True):
        self.calls, original = [], getattr(cls, name)
        self.of = (points_of, labels_of, prev_of)

        def wrapped(predictor, *args, **kwargs):
            out = original(predictor, *args, **kwargs)
            if not keep(args, kwargs):
                return out
            points, labels, prev = (f(predictor, args, kwargs) for f in self.of)
            self.calls.append(dict(points=points, labels=labels, prev=prev, out=out, predictor=predictor,
                                   args=args, kwargs=kwargs, original=original))
            return out

        monkeypatch.setattr(cls, name, wrapped)

    def passes(self, clicks):
        """The calls cut into click passes (a pass starts with no logits fed back)."""
        starts = [i for i, c in enumerate(self.calls) if c['prev'] is None]
        assert starts == list(range(0, len(self.calls), clicks)), 'each pass must be `clicks` calls'
        return [self.calls[i:i + clicks] for i in starts]


def check_pass(calls, logits_index):
    """Call k: k + 1 clicks, labels 1, 0, 1, ..., the clicks of call k - 1 plus one, and call k - 1's
    logits fed back."""
    points = [np.asarray(torch.as_tensor(c['points']).cpu(), dtype=float).reshape(-1, 2) for c in calls]
    for k, call in enumerate(calls):
        labels = np.asarray(torch.as_tensor(call['labels']).cpu()).reshape(-1)
        assert len(points[k]) == k + 1 and labels.tolist() == [(i + 1) % 2 for i in range(k + 1)]
        if k:
            assert np.array_equal(points[k][:k], points[k - 1])
            assert call['prev'] is calls[k - 1]['out'][logits_index]


def test_tiny_run_calls_rows_and_masks(tmp_path, monkeypatch, one_thread):
    from segment_anything import SamPredictor
    clicks, images, (width, height) = 3, 2, (40, 30)
    hrsam = Recorder(monkeypatch, HRSAMPredictor, 'predict', lambda p, a, k: a[0], lambda p, a, k: a[1],
                     lambda p, a, k: a[2])
    sam = Recorder(monkeypatch, SamPredictor, 'predict', lambda p, a, k: k['point_coords'],
                   lambda p, a, k: k['point_labels'], lambda p, a, k: k['mask_input'])
    # predict_torch as the benchmark calls it (mask_input by keyword), not from inside predict.
    sam_t = Recorder(monkeypatch, SamPredictor, 'predict_torch', lambda p, a, k: a[0], lambda p, a, k: a[1],
                     lambda p, a, k: k['mask_input'], keep=lambda a, k: 'mask_input' in k)
    out = tmp_path / 'bench.json'
    result = bp.main(['--device', 'cpu', '--tiny', '--models', 'HRSAM', 'SAM-ViT-B', 'SAM2.1-B+', '--sizes', '64',
                      '--clicks', str(clicks), '--images', str(images), '--image-size', str(width), str(height),
                      '--out', str(out)])
    rows = {r['model']: r for r in result['results']}
    assert json.loads(out.read_text())['results'] == json.loads(json.dumps(result['results']))

    # Calls: (warm-up image + timed images) x one pass per output kind x clicks.
    hrsam_outputs = 2 if bp.hrsam_predictor_options()['return_numpy'] else 1
    assert len(hrsam.calls) == (1 + images) * hrsam_outputs * clicks
    assert len(sam.calls) == len(sam_t.calls) == (1 + images) * clicks
    for rec, logits_index in ((hrsam, 1), (sam, 2), (sam_t, 2)):
        for calls in rec.passes(clicks):
            check_pass(calls, logits_index)
    # Clicks inside the image, in the frame of the original image (HRSAM's own check is bypassed here).
    pts = np.asarray(sam.calls[-1]['points'])
    assert (pts >= 0).all() and (pts[:, 0] < width).all() and (pts[:, 1] < height).all()

    # The mask the benchmark got is the sign of the full-resolution logits, recomputed by the
    # predictor's return_logits path from the same clicks and fed-back logits.
    for call in hrsam.calls[-clicks:]:
        full, _, _ = call['original'](call['predictor'], *call['args'][:3], return_logits=True)
        mask = np.asarray(torch.as_tensor(call['out'][0]).cpu())
        assert mask.dtype == bool and np.array_equal(mask, np.asarray(torch.as_tensor(full).cpu()) > 0)

    for name in ('HRSAM', 'SAM-ViT-B'):
        row = rows[name]
        assert row['status'] == 'ok', row['reason']
        assert len(row['set_image_ms_all']) == images and row['first_set_image_ms'] > 0
        numpy = row['predict']['numpy']
        assert numpy['n'] == images * clicks and numpy['p90_ms'] >= numpy['median_ms'] > 0
        # SPC by hand: (set_image + the clicks' sum) / clicks per image, median over images.
        spc = sorted((s + sum(w)) / clicks for s, w in zip(row['set_image_ms_all'], numpy['click_ms_all']))
        assert numpy['spc_ms'] == pytest.approx((spc[0] + spc[1]) / 2, abs=1e-3)
    assert rows['SAM-ViT-B']['predict']['tensor']['n'] == images * clicks
    assert rows['SAM2.1-B+']['status'] == 'skipped'
    assert rows['SAM2.1-B+']['reason'] == ('no tiny SAM 2 build (--tiny)' if bp.sam2_available()
                                           else 'sam2 not installed')


def test_sam_tensor_output_matches_its_numpy_api(one_thread):
    """The tensor path (predict_torch on coordinates from transform.apply_coords_torch) against
    SamPredictor.predict, the upstream NumPy API, over a fed-back click sequence."""
    args = Namespace(tiny=True)
    session = bp.SamSession('vit_b', 128, 'fp32', args, torch.device('cpu'))
    image = bp.make_images(1, 50, 40, seed=3)[0]
    session.set_image(image)
    points, labels = bp.click_sequence(3, 50, 40)
    prev_np = prev_t = None
    for k in range(3):
        mask_np, prev_np = session.predict(points[:k + 1], labels[:k + 1], prev_np, 'numpy')
        mask_t, prev_t = session.predict(points[:k + 1], labels[:k + 1], prev_t, 'tensor')
        assert isinstance(mask_t, torch.Tensor) and mask_t.shape == (40, 50) == mask_np.shape
        torch.testing.assert_close(prev_t[0], torch.from_numpy(prev_np), rtol=1e-4, atol=1e-4)
        assert (mask_t.numpy() != mask_np).mean() < 1e-3  # only pixels at ~0 logits may flip


def _row(model, size, spc_np, med_np=None, med_t=None, spc_t=None, kernel=None, set_ms=1.0, variant='default'):
    predict = dict(numpy=dict(status='ok', spc_ms=spc_np, median_ms=med_np or 1.0, p90_ms=2 * (med_np or 1.0)))
    if med_t is not None:
        predict['tensor'] = dict(status='ok', spc_ms=spc_t, median_ms=med_t, p90_ms=2 * med_t)
    return dict(model=model, size=size, device='cuda', status='ok', variant=variant, precision=variant, predict=predict,
                gpu_kernel_ms=kernel, gpu_kernel_output='tensor', set_image_ms=set_ms, image='4000x3000')


def test_target_checks_by_hand():
    rows = [_row('HRSAM', 2048, spc_np=3.0, med_np=5.0, med_t=1.5, spc_t=2.0, kernel=0.8, set_ms=12.0),
            _row('SAM-ViT-H', 1024, spc_np=1.0, variant='fp32'),  # the fp32 row is not the reference
            _row('SAM-ViT-H', 1024, spc_np=20.0, med_t=9.0, spc_t=8.0, variant='bf16')]
    checks = {(c['id'], c['target'].split('[')[-1]): c for c in bp.target_checks(rows)}
    assert checks['1', 'numpy]']['value'] == pytest.approx(0.15) and checks['1', 'numpy]']['status'] == 'PASS'
    assert checks['1', 'tensor]']['value'] == pytest.approx(0.25) and checks['1', 'tensor]']['status'] == 'MISS'
    assert checks['2', 'tensor]']['status'] == 'PASS' and checks['3', 'numpy]']['status'] == 'MISS'
    by_id = {c['id']: c for c in bp.target_checks(rows)}
    assert by_id['4']['status'] == 'PASS' and by_id['5']['status'] == 'MISS' and '6' not in by_id
    rows.append(dict(_row('HRSAM', 4096, spc_np=9.0), peak_mib=4096.0, weights_mib=400.0))
    assert {c['id']: c for c in bp.target_checks(rows)}['6']['status'] == 'MISS'  # 4 GiB is not < 4 GiB
    rows[-1]['peak_mib'] = 4000.0
    assert {c['id']: c for c in bp.target_checks(rows)}['6']['status'] == 'PASS'
    assert bp.target_checks([rows[0]]) and not any(c['id'] == '1' for c in bp.target_checks([rows[0]]))


def test_options_missing_from_the_predictor_are_errors():
    have = bp.hrsam_predictor_options()
    argv = ['--device', 'cpu', '--hrsam-precision', 'fp32']
    if have['precision']:
        assert bp.finalize_args(bp.build_parser().parse_args(argv)).hrsam_precision == 'fp32'
    else:
        with pytest.raises(SystemExit, match='no .precision. option'):
            bp.finalize_args(bp.build_parser().parse_args(argv))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_tiny_run_profiles_and_measures_memory(tmp_path):
    result = bp.main(['--device', 'cuda', '--tiny', '--models', 'HRSAM', 'SAM-ViT-B', '--sizes', '128', '--clicks', '3',
                      '--images', '1', '--out', str(tmp_path / 'bench.json')])
    for row in result['results']:
        assert row['status'] == 'ok', row['reason']
        assert row['gpu_kernel_ms'] is not None and row['gpu_kernel_ms'] > 0
        assert row['peak_mib'] >= row['weights_mib'] > 0
        numpy = row['predict']['numpy']
        # The CUDA events lie inside the synchronized wall-clock window of each call.
        assert 0 < numpy['gpu_span_median_ms'] <= numpy['median_ms'] * 1.05 + 0.05


class OptionsPredictor(HRSAMPredictor):
    """A stand-in for the predictor with the precision / compile / decoder_precision / return_numpy
    options that records them (a CPU run cannot take the GPU-only values), so the benchmark's use
    of them is tested whatever this checkout's predictor accepts on a CPU."""
    made = []

    def __init__(self, *args, precision='auto', compile='auto', decoder_precision='auto', **kwargs):
        super().__init__(*args, **kwargs)
        self.precision, self.compile, self.returned = precision, compile, []
        self.decoder_precision = decoder_precision
        OptionsPredictor.made.append(self)

    def predict(self, points, labels, prev_logits=None, return_logits=False, return_numpy=True):
        mask, logits, score = super().predict(points, labels, prev_logits, return_logits)
        mask = mask if return_numpy else torch.from_numpy(mask).to(self.device)
        self.returned.append(type(mask))
        return mask, logits, score


def test_predictor_options_are_passed_and_recorded(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(bp.predictors, 'HRSAMPredictor', OptionsPredictor)  # where the sessions look it up
    OptionsPredictor.made.clear()
    result = bp.main(['--device', 'cpu', '--tiny', '--models', 'HRSAM', '--sizes', '64', '--clicks', '2', '--images',
                      '1', '--hrsam-precision', 'bf16', '--hrsam-compile', 'off', '--hrsam-decoder-precision', 'tf32',
                      '--out', str(tmp_path / 'b.json')])
    row = result['results'][0]
    assert row['status'] == 'ok', row['reason']
    assert row['options']['passed'] == dict(precision='bf16', compile=False, decoder_precision='tf32')
    assert row['options']['available'] == dict(precision=True, compile=True, decoder_precision=True, return_numpy=True)
    assert row['precision'] == 'bf16' and result['env']['hrsam_predictor_options']['return_numpy']
    (predictor,) = OptionsPredictor.made
    assert (predictor.precision, predictor.compile, predictor.decoder_precision) == ('bf16', False, 'tf32')
    # Warm-up and timed image: one NumPy pass then one tensor pass of 2 clicks each.
    assert predictor.returned == [np.ndarray] * 2 + [torch.Tensor] * 2 + [np.ndarray] * 2 + [torch.Tensor] * 2
    assert row['predict']['tensor']['status'] == 'ok' and row['predict']['tensor']['n'] == 2

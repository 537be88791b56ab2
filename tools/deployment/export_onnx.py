"""Export an HRSAM / HRSAM++ model as SAM's ONNX pair: ``encoder.onnx`` and ``decoder.onnx``.

Examples::

    python3 tools/deployment/export_onnx.py configs/hrsam/hrsam_vit-b_1024.py \\
        --checkpoint hrsam_vit-b.pth --target-size 1024 --out work_dirs/onnx/hrsam-1024
    # the same, then both files in onnxruntime (CPU) against PyTorch, with latencies:
    python3 tools/deployment/export_onnx.py CONFIG --checkpoint CKPT --target-size 1024 --out DIR --verify

The encoder is fixed to ``--target-size`` S (1024, 2048 or 4096 usually; any multiple of 16
works) and takes the RGB image resized to long side S; the decoder has segment_anything's
ONNX interface. docs/deployment.md describes both, the preprocessing and the checks.
``--verify`` prints a JSON summary and writes it to ``DIR/verify.json``.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmhrsam.apis import HRSAMPredictor, map_points  # noqa: E402
from mmhrsam.apis.onnx_export import export_onnx_pair, resize_longest_side  # noqa: E402
from mmhrsam.utils.checkpoint import load_checkpoint_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Export an HRSAM / HRSAM++ model as SAM's ONNX encoder/decoder pair")
    parser.add_argument('config', help='config with model=dict(backbone=..., head=...) (and optional predictor=...)')
    parser.add_argument('--checkpoint', help='checkpoint in the project layout; random weights when omitted')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='unpickle a training checkpoint (MMEngine stores Python objects); trusted files only')
    parser.add_argument('--target-size', type=int, required=True, help='encoder input size S, e.g. 1024, 2048, 4096')
    parser.add_argument('--out', required=True, help='output folder for encoder.onnx and decoder.onnx')
    parser.add_argument('--verify', action='store_true',
                        help='run both files in onnxruntime on the CPU against PyTorch and time them')
    parser.add_argument('--runs', type=int, default=3, help='timed encoder runs of --verify (decoder: 10x)')
    return parser.parse_args(argv)


def max_differences(actual: np.ndarray, expected: np.ndarray) -> dict:
    """Largest absolute difference and that difference relative to the largest reference value."""
    diff = float(np.abs(actual - expected).max())
    return {'max_abs': diff, 'max_rel': diff / max(float(np.abs(expected).max()), 1e-12)}


def timed(fn, runs: int) -> float:
    """Mean seconds of ``runs`` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


def verify(predictor: HRSAMPredictor, paths: dict, target_size: int, runs: int) -> dict:
    """Both ONNX files in onnxruntime (CPU) against the PyTorch predictor on a random image."""
    import onnxruntime as ort  # noqa: PLC0415  optional dependency (requirements/onnx.txt)
    rng = np.random.default_rng(0)
    height, width = target_size * 3 // 4 + 5, target_size + 7  # resized by the encoder's preprocessing
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    predictor.set_image(image, target_size=target_size)
    providers = ['CPUExecutionProvider']
    encoder = ort.InferenceSession(paths['encoder'], providers=providers)
    decoder = ort.InferenceSession(paths['decoder'], providers=providers)
    feed = {'input_image': resize_longest_side(image, target_size)}
    embedding = encoder.run(None, feed)[0]
    report = {'target_size': target_size, 'image': [height, width],
              'file_mb': {k: round(os.path.getsize(p) / 2**20, 1) for k, p in paths.items()},
              'embedding': max_differences(embedding, predictor.features.float().numpy()),
              'encoder_ort_s': timed(lambda: encoder.run(None, feed), runs),
              'encoder_torch_s': timed(lambda: predictor.set_image(image, target_size=target_size), runs)}
    points = np.stack([rng.integers(0, width, 5), rng.integers(0, height, 5)], axis=1)
    labels = np.array([1, 0, 1, 1, 0])
    prev = None
    for count in (1, 5):  # the 5-click call feeds the 1-click call's logits back
        full, low_res, score = predictor.predict(points[:count], labels[:count], prev, return_logits=True)
        mapped = map_points(points[:count], (height, width), predictor.input_size)
        inputs = {'image_embeddings': embedding,
                  'point_coords': np.concatenate([mapped, [[0, 0]]])[None].astype(np.float32),
                  'point_labels': np.concatenate([labels[:count], [-1]])[None].astype(np.float32),
                  'mask_input': (prev if prev is not None else torch.zeros_like(low_res)).numpy(),
                  'has_mask_input': np.array([float(prev is not None)], np.float32),
                  'orig_im_size': np.array([height, width], np.float32)}
        masks, iou, low = decoder.run(None, inputs)
        report[f'decoder_{count}_points'] = {
            'masks': max_differences(masks[0, 0], full), 'low_res_masks': max_differences(low, low_res.numpy()),
            'iou_predictions_abs': float(abs(iou.item() - score)),
            'mask_agreement': float(((masks[0, 0] > 0) == (full > 0)).mean())}
        prev = low_res
    report['decoder_ort_s'] = timed(lambda: decoder.run(None, inputs), 10 * runs)
    return report


def main(argv=None) -> dict:
    args = parse_args(argv)
    checkpoint = args.checkpoint
    if checkpoint is not None:
        checkpoint = load_checkpoint_file(checkpoint, allow_pickle=args.allow_pickle)
    predictor = HRSAMPredictor.from_config(args.config, checkpoint=checkpoint, device='cpu')
    predictor.backbone.float()
    predictor.head.float()
    start = time.perf_counter()
    paths = export_onnx_pair(predictor.backbone, predictor.head, args.out, args.target_size,
                             predictor.pixel_mean, predictor.pixel_std, predictor.bgr_input)
    print(f'wrote {paths["encoder"]} and {paths["decoder"]} in {time.perf_counter() - start:.1f} s')
    if not args.verify:
        return {'paths': paths}
    report = verify(predictor, paths, args.target_size, args.runs)
    with open(os.path.join(args.out, 'verify.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))
    return {'paths': paths, 'verify': report}


if __name__ == '__main__':
    main()

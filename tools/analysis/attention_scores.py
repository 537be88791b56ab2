"""Top-1 post-softmax attention score of every token, per layer and input size (HRSAM paper, Fig. 1c).

For each attention layer of a model (any :class:`~mmhrsam.models.attention.FlexibleLocalAttention`
variant: global, Flash Swin, KV-padded Swin, Plain Swin, dilated, multi-scale) and each input
size, every query token's largest attention weight, ``max_j softmax(q·k_j * scale)``, taken over
the keys that token attends to in that variant (all tokens; its window; its window's k² slots
with the pad token in the virtual ones; its sub-grid), per head. The queries and keys are the
ones the layer's kernel receives (``mmhrsam.models.attention.observe_attention``), RoPE
included, so the model's numerics are unchanged. Scores are computed group by group and query
chunk by query chunk (``--max-elements`` score entries at a time) and only the top-1 values are
kept, so 4096² inputs (65,536 tokens under global attention) fit in bounded memory.

Inputs are the first ``--images`` distinct images of the config's test dataset, resized and
padded exactly as the click evaluation does (``mmhrsam.structures.image_geometry``), or
standard-normal encoder inputs with ``--random-input``.

Writes ``<out>/attention_scores.json`` (per size and layer: mean, quantiles, histogram over
log-spaced bins) and ``<out>/attention_scores.png`` (one panel per layer, sizes overlaid) and
prints the mean top-1 score per layer and size. Example::

    python3 tools/analysis/attention_scores.py CONFIG CHECKPOINT --sizes 1024 2048 --images 4 --out OUT
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # benchmark_common

import mmhrsam  # noqa: E402,F401  (registers the models)
from benchmark_common import dump_json  # noqa: E402
from mmhrsam.evaluation.click_test_loop import preprocessing_of  # noqa: E402
from mmhrsam.models.attention import AttentionInputs, observe_attention  # noqa: E402
from mmhrsam.registry import DATASETS, MODELS  # noqa: E402
from mmhrsam.structures.image_geometry import check_target_size, preprocess_image  # noqa: E402

#: Histogram bin edges: log-spaced, since global attention's top-1 scores approach 1 / tokens.
BIN_EDGES = np.logspace(-5, 0, 101)
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


# ---------------------------------------------------------------------- scores
def _chunks(total: int, step: int) -> Iterator[Tuple[int, int]]:
    for start in range(0, total, step):
        yield start, min(start + step, total)


def top1_scores(inputs: AttentionInputs, max_elements: int = 2 ** 27) -> Tensor:
    """Each token's largest post-softmax attention weight, per head.

    Args:
        inputs (AttentionInputs): one layer's queries, keys and groups.
        max_elements (int): most score entries computed at once (memory bound).

    Returns:
        Tensor: (B, heads, num_tokens) float32 on the inputs' device; rows that are not
        tokens (pad slots, zero padding) are left out, tokens that never query stay NaN.
    """
    q, k, part = inputs.q, inputs.k, inputs.partition
    B, _, H, d = q.shape
    out = torch.full((B, H, part.num_tokens), float('nan'), device=q.device)
    qs = ks = group = 0
    for n, lq, lk in part.buckets:
        qb = q[:, qs:qs + n * lq].reshape(B, n, lq, H, d)
        kb = k[:, ks:ks + n * lk].reshape(B, n, lk, H, d)
        tokens = part.q_index[qs:qs + n * lq].view(n, lq)
        bias = None if inputs.bias is None else inputs.bias[group:group + n]  # (n, lq, lk)
        per_group = B * H * lq * lk
        groups_step = max(1, max_elements // per_group)
        rows_step = lq if per_group <= max_elements else max(1, max_elements // (B * H * lk))
        for g0, g1 in _chunks(n, groups_step):
            for r0, r1 in _chunks(lq, rows_step):
                s = torch.einsum('bgqhd,bgkhd->bghqk', qb[:, g0:g1, r0:r1].float(), kb[:, g0:g1].float())
                s = s * inputs.scale
                if bias is not None:
                    s = s + bias[g0:g1, None, r0:r1].float()
                top = (s.amax(-1) - s.logsumexp(-1)).exp()  # (B, g, H, rows): max_j softmax
                tok = tokens[g0:g1, r0:r1]
                real = tok < part.num_tokens
                out[:, :, tok[real]] = top.permute(0, 2, 1, 3)[:, :, real]
        qs, ks, group = qs + n * lq, ks + n * lk, group + n
    return out


@torch.no_grad()
def collect_top1(model, x: Tensor, max_elements: int = 2 ** 27, precision: str = 'fp32'
                 ) -> Dict[str, Tensor]:
    """Run the encoder on ``x`` and return each attention layer's top-1 scores.

    Args:
        model: an :class:`~mmhrsam.models.segmentors.InteractiveSAM` (``extract_feat``).
        x (Tensor): (B, 3, H, W) normalized, padded encoder input on the model's device.
        max_elements (int): see :func:`top1_scores`.
        precision (str): ``'fp32'`` or ``'bf16'`` (autocast of the encoder, as the click
            evaluation's ``--precision``).

    Returns:
        dict: layer name -> (B, heads, num_tokens) float32 CPU tensor, in module order.
    """
    scores: Dict[str, Tensor] = {}

    def observer(name: str, inputs: AttentionInputs) -> None:
        if name in scores:
            raise RuntimeError(f'attention layer {name} ran twice in one forward pass')
        scores[name] = top1_scores(inputs, max_elements).cpu()

    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == 'bf16')
    with observe_attention(model, observer) as names, autocast:
        model.extract_feat(x)
    return {name: scores[name] for name in names if name in scores}


# ---------------------------------------------------------------------- inputs
def load_model(config: str, checkpoint: Optional[str], options: dict, device: str):
    """The config's model, with ``checkpoint`` loaded strictly (random weights without one)."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import CheckpointLoader

    from mmhrsam.utils.checkpoint import load_model_weights
    from mmhrsam.utils.launch import load_config

    cfg = load_config(config, None, options, 'none')
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_model_weights(model, CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu'))
    return cfg, model.to(device).eval()


def dataset_images(cfg, num_images: int) -> List[Tuple[str, np.ndarray]]:
    """The first ``num_images`` distinct images (id, (H, W, 3) uint8 RGB) of the test dataset."""
    from mmengine.registry import DefaultScope
    if not cfg.get('test_dataloader'):
        raise ValueError('the config has no test_dataloader; use --random-input')
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        dataset = DATASETS.build(cfg.test_dataloader.dataset)
    images, seen = [], set()
    for index in range(len(dataset)):
        img_id = dataset.get_data_info(index)['img_id']
        if img_id not in seen:
            seen.add(img_id)
            images.append((str(img_id), dataset.load_image(index)))
            if len(images) == num_images:
                break
    return images


def encoder_inputs(model, images, size: int, device: str, seed: int) -> Iterator[Tuple[str, Tensor]]:
    """(name, (1, 3, size, size) input) per image: the click evaluation's preprocessing, or
    standard-normal noise (seeded per image) when ``images`` is an int (their number)."""
    if isinstance(images, int):
        for i in range(images):
            gen = torch.Generator().manual_seed(seed + i)
            yield f'random-{i}', torch.randn(1, 3, size, size, generator=gen).to(device)
        return
    pre = preprocessing_of(model)
    for name, image in images:
        x, _ = preprocess_image(image, size, pre['mean'], pre['std'], pre['bgr_input'], device)
        yield name, x


# ---------------------------------------------------------------------- summary
def summarize(values: np.ndarray) -> dict:
    """Mean, extremes, quantiles and log-binned histogram of top-1 scores."""
    values = values[np.isfinite(values)]
    counts, _ = np.histogram(np.clip(values, BIN_EDGES[0], BIN_EDGES[-1]), bins=BIN_EDGES)
    out = dict(count=int(values.size), mean=float(values.mean()), min=float(values.min()), max=float(values.max()),
               histogram=counts.tolist())
    out.update({f'q{round(100 * q)}': float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES))})
    return out


def analyse(model, images, sizes: Sequence[int], device: str, max_elements: int, precision: str,
            seed: int = 0) -> dict:
    """Top-1 score summaries per size and layer (see the module docstring)."""
    from tqdm import tqdm
    num = images if isinstance(images, int) else len(images)
    values: Dict[int, Dict[str, List[np.ndarray]]] = {s: {} for s in sizes}
    names: List[str] = []
    with tqdm(total=num * len(sizes), desc='attention scores', unit='image') as bar:
        for size in sizes:
            for _, x in encoder_inputs(model, images, size, device, seed):
                for name, top in collect_top1(model, x, max_elements, precision).items():
                    values[size].setdefault(name, []).append(top.flatten().numpy())
                    if name not in names:
                        names.append(name)
                bar.update()
    kinds = {name: type(model.get_submodule(name)).__name__ for name in names}
    results = {str(s): {n: summarize(np.concatenate(values[s][n])) for n in names} for s in sizes}
    return dict(layers=names, layer_types=kinds, sizes=list(sizes), bin_edges=BIN_EDGES.tolist(),
                precision=precision, results=results)


def format_table(summary: dict) -> str:
    """Mean top-1 score per layer (rows) and size (columns)."""
    sizes = [str(s) for s in summary['sizes']]
    lines = ['layer | type | ' + ' | '.join(f'{s}²' for s in sizes)]
    for name in summary['layers']:
        means = ' | '.join(f"{summary['results'][s][name]['mean']:.4f}" for s in sizes)
        lines.append(f"{name} | {summary['layer_types'][name]} | {means}")
    return '\n'.join(lines)


def plot(summary: dict, path: str, title: str = '') -> None:
    """One panel per layer: the top-1 score histogram (fraction of queries) of every size."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = summary['layers']
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), dpi=110, squeeze=False)
    edges = np.asarray(summary['bin_edges'])
    for ax, name in zip(axes.flat, names):
        for size in summary['sizes']:
            res = summary['results'][str(size)][name]
            frac = np.asarray(res['histogram'], dtype=float) / max(res['count'], 1)
            ax.stairs(frac, edges, label=f"{size}² (mean {res['mean']:.3f})")
        ax.set_xscale('log')
        ax.set_title(f"{name.replace('backbone.', '')} ({summary['layer_types'][name]})", fontsize=8)
        ax.set_xlabel('top-1 attention score', fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.axis('off')
    fig.suptitle(title or 'top-1 post-softmax attention score per query token and head', fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------- command line
def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config (its test_dataloader supplies the images)')
    parser.add_argument('checkpoint', nargs='?', default=None, help='checkpoint; omit for random weights')
    parser.add_argument('--sizes', type=int, nargs='+', default=[1024, 2048], help='encoder input sizes')
    parser.add_argument('--images', type=int, default=4, help='images per size')
    parser.add_argument('--random-input', action='store_true', help='standard-normal inputs instead of images')
    parser.add_argument('--seed', type=int, default=0, help='seed of --random-input')
    parser.add_argument('--out', default='work_dirs/attention_scores', help='folder of the JSON and PNG')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32', help='autocast of the encoder')
    parser.add_argument('--max-elements', type=int, default=2 ** 27, help='score entries computed at once')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='config overrides')
    args = parser.parse_args(argv)
    for size in args.sizes:
        check_target_size(size)
    if args.images < 1:
        parser.error('--images must be >= 1')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg, model = load_model(args.config, args.checkpoint, args.cfg_options, args.device)
    if args.checkpoint is None:
        print('no checkpoint given: random weights', flush=True)
    images = args.images if args.random_input else dataset_images(cfg, args.images)
    summary = analyse(model, images, args.sizes, args.device, args.max_elements, args.precision, args.seed)
    summary.update(config=args.config, checkpoint=args.checkpoint,
                   inputs='random-normal' if args.random_input else [name for name, _ in images])
    os.makedirs(args.out, exist_ok=True)
    dump_json(osp.join(args.out, 'attention_scores.json'), summary)
    plot(summary, osp.join(args.out, 'attention_scores.png'), title=osp.basename(args.config))
    print('mean top-1 attention score\n' + format_table(summary))
    print(f'wrote {osp.join(args.out, "attention_scores.json")} and attention_scores.png', flush=True)
    return summary


if __name__ == '__main__':
    main()

"""The study's Markdown tables (click metrics, top-1 attention scores) and run notes."""
from __future__ import annotations

from typing import List


def click_table(data: dict) -> List[str]:
    """Click metrics per model and size; Δ is 5-mIoU relative to the model's first size."""
    labels = {m: s['label'] for m, s in data['settings']['models'].items()}
    sizes = [str(s) for s in data['settings']['eval_sizes']]
    lines = [f'| model | size | mIoU@1 | 5-mIoU | Δ 5-mIoU vs {sizes[0]}² | mIoU at the last click | NoC@85 | '
             'NoC@90 | NoF@90 |', '|---|---:|' + '---:|' * 7]
    for model, label in labels.items():
        evals = data['eval'].get(model, {})
        for size in sizes:
            ev = evals.get(size)
            if ev is None:
                lines.append(f'| {label} | {size}² | ' + ' | '.join(['n/a'] * 7) + ' |')
                continue
            m, curve = ev['metrics'], ev['miou_curve']
            five = curve[min(4, len(curve) - 1)]
            base = evals.get(sizes[0])
            delta = ('—' if size == sizes[0] else 'n/a' if base is None
                     else f"{100 * (five / base['miou_curve'][min(4, len(curve) - 1)] - 1):+.1f} %")
            lines.append(f"| {label} | {size}² | {curve[0]:.3f} | {five:.3f} | {delta} | {curve[-1]:.3f} | "
                         f"{m['NoC@85']:.2f} | {m['NoC@90']:.2f} | {m['NoF@90']} |")
    return lines


def attention_table(data: dict) -> List[str]:
    """Mean top-1 attention score per layer and size, its mean over layers and the mean median."""
    labels = {m: s['label'] for m, s in data['settings']['models'].items() if m in data['attention']}
    if not labels:
        return []
    num_layers = max(len(data['attention'][m]['layers']) for m in labels)
    lines = ['| model | size | ' + ' | '.join(f'layer {i}' for i in range(num_layers)) + ' | mean | median |',
             '|---|---:|' + '---:|' * (num_layers + 2)]
    for model, label in labels.items():
        for size in map(str, data['settings']['score_sizes']):
            stats = data['attention'][model]['sizes'].get(size)
            if stats is None:
                continue
            layers = [f'{v:.3f}' for v in stats['mean']] + [''] * (num_layers - len(stats['mean']))
            mean, median = (sum(stats[k]) / len(stats[k]) for k in ('mean', 'q50'))
            lines.append(f'| {label} | {size}² | ' + ' | '.join(layers) + f' | {mean:.3f} | {median:.4f} |')
    return lines


def markdown_tables(data: dict) -> str:
    """The click-metric table and the top-1 attention-score table (per layer; median over tokens)."""
    return '\n'.join(click_table(data) + [''] + attention_table(data)) + '\n'


def run_notes(data: dict) -> str:
    """Wall times, and for a JSON rebuilt by ``collect`` what its work dir could not tell."""
    walls = [f'{key[:-7]} {data[key]:.0f} s' for key in ('train_wall_s', 'eval_wall_s', 'total_wall_s')
             if data.get(key) is not None]
    lines = ['', 'Wall times: ' + (', '.join(walls) if walls else 'not recorded') + '.']
    if 'collected' in data:
        lines += ['', f"Rebuilt by `collect` from {data['collected']['work_dir']}. Notes: "
                  + '; '.join(data['collected']['notes']) + '.', '', 'Missing:', '']
        lines += [f'- `{key}`: {why}' for key, why in data['collected']['missing'].items()]
    return '\n'.join(lines) + '\n'

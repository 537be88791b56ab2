"""The study's PNGs: mIoU curves, NoC bars, mean top-1 attention scores, training loss."""
from __future__ import annotations

import os.path as osp
from typing import List


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # a panel of a cut-off run may have nothing yet
        ax.legend(fontsize=7)


def _plot_miou(ax_row, data: dict, labels: dict, sizes: List[str]) -> None:
    for ax, size in zip(ax_row, sizes):
        for model, label in labels.items():
            ev = data['eval'].get(model, {}).get(size)
            if ev:
                ax.plot(range(1, len(ev['miou_curve']) + 1), ev['miou_curve'], marker='.', label=label)
        ax.set(title=f'evaluated at {size}²', xlabel='clicks', ylabel='mIoU')
        ax.grid(alpha=0.3)
        _legend(ax)


def _plot_noc(ax_row, data: dict, labels: dict, sizes: List[str]) -> None:
    width = 0.8 / max(len(labels), 1)
    for ax, key in zip(ax_row, ('NoC@85', 'NoC@90')):
        for i, (model, label) in enumerate(labels.items()):
            values = [data['eval'].get(model, {}).get(s, {}).get('metrics', {}).get(key, float('nan')) for s in sizes]
            ax.bar([j + i * width for j in range(len(sizes))], values, width, label=label)
        ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(sizes))], [f'{s}²' for s in sizes])
        ax.set(title=f'{key} (lower is better)', ylabel='clicks')
        ax.set_ylim(top=ax.get_ylim()[1] * 1.35)  # room for the legend above the bars
        _legend(ax)


def _plot_attention(ax_row, data: dict, labels: dict, models: List[str]) -> None:
    for ax, model in zip(ax_row, models):
        att = data['attention'][model]
        for size, stats in att['sizes'].items():
            ax.plot(range(len(att['layers'])), stats['mean'], marker='o', label=f'{size}²')
        ax.set(title=labels[model], xlabel='layer', ylabel='mean top-1 attention score', yscale='log')
        ax.grid(alpha=0.3)
        _legend(ax)


def _plot_loss(ax, data: dict, labels: dict) -> None:
    for model, label in labels.items():
        rec = data['train'].get(model)
        if rec:
            ax.plot(rec['loss_iters'], rec['loss'], label=label)
    ax.set(xlabel='iteration', ylabel='training loss', title='click training')
    ax.grid(alpha=0.3)
    _legend(ax)


def plot_study(data: dict, out: str) -> List[str]:
    """The study's PNGs (mIoU curves, NoC bars, mean top-1 scores, training loss); returns their paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = {m: s['label'] for m, s in data['settings']['models'].items()}
    sizes = [str(s) for s in data['settings']['eval_sizes']]
    attended = [m for m in labels if m in data['attention']]
    figures = [('miou_vs_clicks.png', len(sizes), lambda axes: _plot_miou(axes, data, labels, sizes)),
               ('noc.png', 2, lambda axes: _plot_noc(axes, data, labels, sizes)),
               ('attention_top1_mean.png', len(attended), lambda axes: _plot_attention(axes, data, labels, attended)),
               ('train_loss.png', 1 if data['train'] else 0, lambda axes: _plot_loss(axes[0], data, labels))]
    paths = []
    for name, panels, draw in figures:
        if not panels:
            continue
        fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), dpi=110, squeeze=False)
        draw(axes[0])
        fig.tight_layout()
        fig.savefig(osp.join(out, name))
        plt.close(fig)
        paths.append(osp.join(out, name))
    return paths

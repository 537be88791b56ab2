"""Timing modes: the one table that declares how a forward is timed.

To add a mode, add a row to :data:`TIMING_MODES` and the ``Runner`` method its ``run`` names
(``measure.py``); the command-line switch, the run plan, the result tables and the target
checks all follow the table.
"""
from __future__ import annotations

import argparse
from typing import List, NamedTuple, Optional

import torch


class TimingMode(NamedTuple):
    """One way of timing an encoder forward.

    Attributes:
        run: the ``Runner`` method that measures a case in this mode, ``(row, model, x)``.
        flag: the command-line switch that turns the mode on (off with ``--no-...`` when
            ``default``); None: always timed.
        default: timed without the switch.
        help: the switch's help text.
        cuda_only: '' or the reason recorded for its cases on a device other than CUDA.
    """
    run: str
    flag: Optional[str] = None
    default: bool = False
    help: str = ''
    cuda_only: str = ''


#: Run order within a (model, size); tables list the modes in this order.
TIMING_MODES = {
    'eager': TimingMode('_run_eager'),
    # What a user gets by default: mmhrsam.apis.EncoderRunner with its defaults, as the
    # predictor's set_image runs it (compiled per size, CUDA-graph replay, autocast weights
    # stored once); on CPU that default is the eager row itself.
    'fast': TimingMode('_run_fast', '--fast', default=True,
                       help="time the predictor's default encoder path (EncoderRunner; on by default)",
                       cuda_only="on CPU the default path is the eager forward (the 'eager' row)"),
    'graph': TimingMode('_run_graph', '--cuda-graph', help='also time replays of the captured forward',
                        cuda_only='CUDA graphs need a CUDA device'),
    'compile': TimingMode('_run_compile', '--compile', help='also time torch.compile(model) (compiled per size)'),
}
MODES = tuple(TIMING_MODES)
#: Not a timing mode: one hooked eager forward split into parts (``breakdown.py``), planned
#: separately for ``--breakdown-models`` at ``--breakdown-size``.
BREAKDOWN_MODE = TimingMode('_run_breakdown')


def _dest(flag: str) -> str:
    return flag.lstrip('-').replace('-', '_')


def add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """One switch per mode that has a ``flag``."""
    for mode in TIMING_MODES.values():
        if mode.flag is None:
            continue
        if mode.default:
            parser.add_argument(mode.flag, action=argparse.BooleanOptionalAction, default=True, help=mode.help)
        else:
            parser.add_argument(mode.flag, action='store_true', help=mode.help)


def enabled_modes(args: argparse.Namespace) -> List[str]:
    """The modes this run times, in :data:`TIMING_MODES` order."""
    return [name for name, mode in TIMING_MODES.items() if mode.flag is None or getattr(args, _dest(mode.flag))]


def mode_skip_reason(mode: str, device: torch.device) -> str:
    """Why ``mode`` cannot run on ``device`` ('' if it can)."""
    cuda_only = TIMING_MODES[mode].cuda_only if mode in TIMING_MODES else ''
    return cuda_only if cuda_only and device.type != 'cuda' else ''


def runner_method(mode: str) -> str:
    """The ``Runner`` method that measures a case of ``mode`` (a timing mode or 'breakdown')."""
    if mode == 'breakdown':
        return BREAKDOWN_MODE.run
    return TIMING_MODES[mode].run

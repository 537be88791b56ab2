"""What the benchmark scripts under tools/analysis share: model-name lookup for the command
line, PASS / MISS target checks and their printout, table cells, the JSON file."""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, Iterable, Mapping, Optional, Sequence


def resolve_label(name: str, labels: Iterable[str], aliases: Mapping[str, str], kind: str) -> str:
    """The label in ``labels`` equal to ``name`` in any case, or ``aliases[name.lower()]``.

    Raises:
        argparse.ArgumentTypeError: neither (for use as an argparse ``type``).
    """
    labels = list(labels)
    for label in labels:
        if label.lower() == name.lower():
            return label
    if name.lower() in aliases:
        return aliases[name.lower()]
    raise argparse.ArgumentTypeError(f'unknown {kind} {name!r}; choose from {labels}')


def make_check(ident: str, target: str, value: float, limit: float, detail: str, strict: bool = False,
               mode: Optional[str] = None) -> Dict:
    """A target check: PASS when ``value <= limit`` (``<`` when ``strict``), else MISS; ``mode``
    names the timing mode it was read from, where a benchmark has several."""
    ok = value < limit if strict else value <= limit
    return dict(id=ident, target=target, **({} if mode is None else dict(mode=mode)), value=round(value, 4),
                limit=limit, status='PASS' if ok else 'MISS', detail=detail)


def format_checks(checks: Sequence[Dict]) -> str:
    """One ``[PASS] (id) target [mode]: detail`` line per check (``[mode]`` where it has one)."""
    if not checks:
        return 'targets: none of the needed rows exist in this run'
    return '\n'.join(f"[{c['status']}] ({c['id']}) {c['target']}{' [' + c['mode'] + ']' if 'mode' in c else ''}: "
                     f"{c['detail']}" for c in checks)


def fmt_cell(value, spec: str, width: int) -> str:
    """``value`` formatted right-aligned in ``width``, or ``-`` when it is None."""
    return f'{"-":>{width}}' if value is None else f'{value:>{width}{spec}}'


def dump_json(path: str, data: Dict) -> None:
    """Write ``data`` to ``path`` (indent 1), creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)

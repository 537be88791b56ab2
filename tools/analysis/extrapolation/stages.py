"""The ``plot`` and ``collect`` stages as the command line runs them, and the ``--bundle`` archive."""
from __future__ import annotations

import os
import os.path as osp
import tarfile
from typing import Optional

from benchmark_common import dump_json

from .collect import Collector
from .plots import plot_study
from .records import read_json
from .tables import markdown_tables, run_notes


def stage_plot(out: str) -> None:
    """``plot``: the tables (``extrapolation_study.md``) and PNGs of ``out``'s JSON, into ``out``."""
    data = read_json(osp.join(out, 'extrapolation_study.json'))
    tables = markdown_tables(data) + run_notes(data)
    with open(osp.join(out, 'extrapolation_study.md'), 'w') as f:
        f.write(tables)
    paths = plot_study(data, out)
    print(tables + '\nwrote ' + ', '.join(osp.basename(p) for p in paths) + f' and extrapolation_study.md in {out}')


def stage_collect(work_dir: str, out: str) -> dict:
    """``collect``: the JSON rebuilt from ``work_dir``, then the tables and PNGs, into ``out``."""
    os.makedirs(out, exist_ok=True)
    data = Collector(work_dir).collect(out)
    dump_json(osp.join(out, 'extrapolation_study.json'), data)
    stage_plot(out)
    return data


def write_bundle(path: str, out: str, work_dir: str) -> None:
    """One ``.tar.gz`` of ``out`` (as ``out/``) and ``work_dir`` without checkpoints (as ``work_dir/``).

    For machines that return few files: unpacked, ``collect --work-dir work_dir`` rebuilds the
    study from it, and ``out/`` holds the run's own JSON, tables, PNGs and tool logs.
    """
    def no_checkpoints(info: tarfile.TarInfo) -> Optional[tarfile.TarInfo]:
        return None if info.name.endswith('.pth') else info

    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with tarfile.open(path, 'w:gz') as tar:  # tarfile skips the archive itself if it lies inside
        for folder, name in ((out, 'out'), (work_dir, 'work_dir')):
            if osp.isdir(folder):  # a run that failed early may not have made both
                tar.add(folder, arcname=name, filter=no_checkpoints)
    print(f'wrote {path} ({osp.getsize(path) / 2 ** 20:.1f} MiB)', flush=True)

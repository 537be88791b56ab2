"""One tool run (``Job``) and the ``Runner`` that runs jobs concurrently per device."""
from __future__ import annotations

import concurrent.futures
import os
import os.path as osp
import queue
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from .settings import NO_MULTICAST, ROOT


@dataclass
class Job:
    """One tool run: ``args`` after the Python interpreter, its log, and what to do with it."""
    name: str
    args: List[str]
    on_done: Callable[[float], None]
    needs: List[str] = field(default_factory=list)  # files that must exist (a training's checkpoint)


class Runner:
    """Runs jobs, ``per_device`` at a time on each device, with one deadline.

    Each job sees only its device (``CUDA_VISIBLE_DEVICES``) and an equal share of the host's
    cores as torch threads; its output goes to ``<log_dir>/<job name>.log``. Every job is a
    fresh ``python`` subprocess (a child forked from this process would inherit its autograd
    and OpenMP threads, which PyTorch does not support: it failed inside the test suite). A job
    that fails is recorded and the others go on; jobs not started by the deadline are skipped
    and recorded.
    """

    def __init__(self, log_dir: str, devices: List[str], per_device: int, deadline: Optional[float]):
        self.log_dir, self.devices, self.deadline = log_dir, devices, deadline
        os.makedirs(log_dir, exist_ok=True)
        self.slots: 'queue.Queue[str]' = queue.Queue()
        for _ in range(per_device):
            for device in devices:
                self.slots.put(device)
        self.workers = len(devices) * per_device
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.failed: Dict[str, str] = {}
        self.skipped: Dict[str, str] = {}

    def env(self, device: str) -> Dict[str, str]:
        path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
        return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS=str(self.threads),
                    CUDA_VISIBLE_DEVICES='' if device == 'cpu' else device, **NO_MULTICAST)

    def _run(self, job: Job) -> None:
        missing = [p for p in job.needs if not osp.isfile(p)]
        if missing:
            self.skipped[job.name] = f'missing {missing} (an earlier job failed or was skipped)'
            return
        if self.deadline is not None and time.time() > self.deadline:
            self.skipped[job.name] = 'not started: --time-limit-s reached'
            return
        device = self.slots.get()
        log_path = osp.join(self.log_dir, f'{job.name}.log')
        try:
            start = time.perf_counter()
            with open(log_path, 'w') as log:
                code = subprocess.run([sys.executable] + job.args, cwd=ROOT, env=self.env(device), stdout=log,
                                      stderr=subprocess.STDOUT).returncode
            seconds = time.perf_counter() - start
        finally:
            self.slots.put(device)
        if code != 0:
            self.failed[job.name] = f'exit code {code}; see {log_path}'
            print(f'{job.name}: FAILED ({code}), log {log_path}', flush=True)
            return
        print(f'{job.name}: done in {seconds:.0f} s (device {device})', flush=True)
        try:
            job.on_done(seconds)
        except Exception as e:  # noqa: BLE001  one unreadable result must not stop the other jobs
            self.failed[job.name] = f'its results could not be read: {e!r}'
            print(f'{job.name}: results unreadable: {e!r}', flush=True)

    def run(self, jobs: List[Job]) -> None:
        """Run ``jobs`` (started in list order) and wait for all of them."""
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:
            for future in [pool.submit(self._run, job) for job in jobs]:
                future.result()

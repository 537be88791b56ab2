"""One tool run (``Job``) and the ``Runner`` that runs jobs concurrently per device."""
from __future__ import annotations

import concurrent.futures
import os
import os.path as osp
import queue
import runpy
import subprocess
import sys
import time
import traceback
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


def run_forked(args: List[str], env: Dict[str, str], log_path: str, threads: int) -> int:
    """``python args...`` in a forked child of this process; returns its exit code.

    Only for CPU runs: the child inherits the parent's imports (torch, MMEngine, mmhrsam: the
    main cost of a tiny run) and runs the tool as ``__main__``. GPU runs use fresh interpreters,
    which inherit no CUDA state.
    """
    pid = os.fork()
    if pid:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    code = 1
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # new stream objects: the parent's may have been locked by another thread at fork time
        sys.stdout = os.fdopen(os.dup(1), 'w', buffering=1)
        sys.stderr = os.fdopen(os.dup(2), 'w', buffering=1)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(ROOT)
        import torch
        torch.set_num_threads(threads)
        sys.argv = list(args)
        runpy.run_path(args[0], run_name='__main__')
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:  # noqa: BLE001  reported in the job's log, as a subprocess would
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Runner:
    """Runs jobs, ``per_device`` at a time on each device, with one deadline.

    Each job sees only its device (``CUDA_VISIBLE_DEVICES``) and an equal share of the host's
    cores as torch threads; its output goes to ``<log_dir>/<job name>.log``. On GPUs every job
    is a fresh ``python`` subprocess; on the CPU a forked child of this process
    (:func:`run_forked`). A job that fails is recorded and the others go on; jobs not started
    by the deadline are skipped and recorded.
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
        self.fork = devices == ['cpu']
        if self.fork:  # imported once here, before any thread starts, then shared by every child
            import mmengine.runner  # noqa: F401
            import mmhrsam  # noqa: F401

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
            if self.fork:
                code = run_forked(job.args, self.env(device), log_path, self.threads)
            else:
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

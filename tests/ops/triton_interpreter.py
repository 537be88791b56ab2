"""Running a test file's Triton tests under Triton's CPU interpreter.

The interpreter only works in a process that had TRITON_INTERPRET=1 before triton was first
imported (triton's own ``tl.zeros``, ``tl.sum``, ... are ``@jit`` functions decorated at that
import, and torch imports triton early), so a test file runs itself again in a subprocess with
the variable set; its interpreter-only tests run there and skip in the main process.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_interpreter_suite(test_file: str) -> None:
    """Run ``test_file`` with pytest under TRITON_INTERPRET=1; fail with its report if any test
    fails or none passes, skip if the file reports that the interpreter cannot run here."""
    pytest.importorskip('triton')
    env = dict(os.environ, TRITON_INTERPRET='1')
    cmd = [sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', test_file]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    report = out.stdout[-6000:] + out.stderr[-3000:]
    if 'triton interpreter cannot run here' in out.stdout or 'triton interpreter unavailable' in out.stdout:
        pytest.skip('triton interpreter cannot run here:\n' + report)
    assert out.returncode == 0, report
    assert ' passed' in out.stdout and 'failed' not in out.stdout, report

"""Atomic writes: a process killed in the middle of writing never leaves a partial file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WRITER = r"""
import sys
from pathlib import Path
from autocompress._files import atomic_write_bytes

target = Path(sys.argv[1])
payloads = [b"a" * (64 * 2**20), b"b" * (64 * 2**20)]
i = 0
print("ready", flush=True)
while True:
    atomic_write_bytes(target, payloads[i % 2])
    i += 1
"""


def test_kill_during_writes_leaves_old_or_new_file_never_partial(tmp_path: Path) -> None:
    target = tmp_path / "model.tflite"
    for delay in (0.05, 0.2, 0.45, 0.7):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if target.exists():
            data = target.read_bytes()
            assert len(data) == 64 * 2**20 and data.count(data[:1]) == len(data)
    # Only the target and at most one abandoned temporary (hidden, never read as a result).
    others = [p.name for p in tmp_path.iterdir() if p != target]
    assert all(name.startswith(".model.tflite.") and name.endswith(".tmp") for name in others)

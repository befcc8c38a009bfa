"""Run a latency backend in a child process, so that a malformed file that crashes the LiteRT
interpreter (a segfault, not an exception) is reported as an error instead of killing us."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.connection import Connection

from autocompress.errors import InputError
from autocompress.hardware.profile import HardwareProfile
from autocompress.records import LatencyResult


def _child(conn: Connection, tflite: bytes, profile: HardwareProfile) -> None:
    from autocompress._quiet import quiet_native_startup
    from autocompress.hardware import latency

    try:
        quiet_native_startup(tensorflow=False)
        conn.send(("ok", latency(tflite, profile)))
    except Exception as exc:  # reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
    finally:
        conn.close()


def latency_in_subprocess(
    tflite: bytes, profile: HardwareProfile, source: str, timeout_s: float = 300.0
) -> LatencyResult:
    """``latency(tflite, profile)`` computed in a spawned process."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, tflite, profile), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise InputError(source, f"latency estimate did not finish in {timeout_s:.0f} s")
        status, payload = parent.recv()
    except EOFError:
        proc.join(5)
        raise InputError(
            source, f"the LiteRT interpreter crashed on this file (exit code {proc.exitcode})"
        ) from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if status != "ok":
        raise InputError(source, f"cannot be measured: {payload}")
    return payload

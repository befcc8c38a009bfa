"""Real third-party ``.tflite`` files through a search: MediaPipe's on-device models.

The ``mediapipe`` wheel up to 0.10.14 ships its models inside the package
(``mediapipe/modules/**/*.tflite``): files without a SignatureDef, several with float16 weights
behind DEQUANTIZE ops, one or several outputs -- the kind of file the issue on users' files
names. The wheel (about 40 MB) is fetched once with ``pip download --no-deps`` into
``--cache``; it is never installed (only its model files are read).

Each file is searched as a user without labels would: data of the file's input size drawn
procedurally (smooth random colour fields with shapes; no download), ``--space tflite``,
``--profile cpu-host --profile edgetpu-usb``, the original model's outputs as targets
(``fidelity``). Printed per file: its outputs, whether its weights were float16, the trials
that completed or failed, the best int8 candidate's fidelity and whether the Edge TPU runs it,
and the cpu-host latency of the fastest candidate within 1 % of the baseline's fidelity against
the fastest plain conversion (fp32 / float16 / dynamic / int8, measured side by side in the run).

    .venv/bin/python benchmarks/third_party_tflite.py [--trials 8] [--files face_detection ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

WHEEL = "mediapipe==0.10.14"
FILES = {
    "face_detection": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "iris_landmark": "mediapipe/modules/iris_landmark/iris_landmark.tflite",
    "hand_recrop": "mediapipe/modules/holistic_landmark/hand_recrop.tflite",
}
PLAIN = ("none", "float16", "dynamic", "int8")


def fetch(cache: Path) -> Path:
    """The mediapipe wheel in ``cache`` (downloaded once)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("mediapipe-0.10.14-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), WHEEL],
            check=True,
        )
        found = sorted(cache.glob("mediapipe-0.10.14-*.whl"))
    return found[0]


def images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth random colour fields with a bright ellipse: picture-like inputs in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    out = np.empty((n, h, w, c), np.float32)
    for i in range(n):
        base = rng.uniform(0, 1, (1, 1, c)) + 0.3 * np.sin(
            rng.uniform(2, 8) * xx[..., None] + rng.uniform(0, 6, (1, 1, c))
        )
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.3)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2)[..., None]
        out[i] = np.clip(np.where(mask, rng.uniform(0.6, 1.0, (1, 1, c)), base), 0, 1)
    return out + rng.normal(0, 0.02, out.shape).astype(np.float32)


def run_one(name: str, member: str, wheel: Path, root: Path, trials: int) -> dict[str, object]:
    from ai_edge_litert.interpreter import Interpreter

    from autocompress.hardware.flatbuffer import read_tflite

    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        content = archive.read(member)
    (folder / "model.tflite").write_bytes(content)
    interpreter = Interpreter(model_content=content)
    detail = interpreter.get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"][1:])
    np.savez(folder / "inputs.npz", x_train=images(96, shape, 0), x_val=images(48, shape, 1))
    (folder / "task.yaml").write_text("model: model.tflite\ndata: inputs.npz\n")
    ops = {op.name for op in read_tflite(content, name).ops}
    out = folder / "run"
    shutil.rmtree(out, ignore_errors=True)  # a fresh search, not a resumed one
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "autocompress", "search", "--task", str(folder / "task.yaml"),
         "--space", "tflite", "--profile", "cpu-host", "--profile", "edgetpu-usb",
         "--trials", str(trials), "--workers", "1", "--out", str(out)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    row: dict[str, object] = {
        "file": Path(member).name,
        "outputs": len(interpreter.get_output_details()),
        "signature": bool(interpreter.get_signature_list()),
        "fp16_weights": "DEQUANTIZE" in ops,
        "seconds": round(time.perf_counter() - started),
    }
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:160]
        return row
    t = pd.read_csv(out / "trials.csv")
    done = t[t["state"] == "COMPLETE"]
    row["complete"], row["failed"] = len(done), int((t["state"] == "FAIL").sum())
    int8 = done[done["quantization"] == "int8"]
    if len(int8):
        best = int8.sort_values("fidelity").iloc[-1]
        row["int8_fidelity"] = round(float(best["fidelity"]), 4)
        row["int8_edgetpu"] = bool(best["deployable_edgetpu-usb"])
    baseline = float(done.loc[done["trial"] == 0, "fidelity"].iloc[0])
    lat = "latency_ms_cpu-host"
    plain = done[done["quantization"].isin(PLAIN) & (done.get("keep_sensitive", 0) == 0)]
    within = done[done["fidelity"] >= baseline - 0.01]
    if len(plain) and len(within):
        row["fastest_plain_ms"] = round(float(plain[lat].min()), 3)
        row["fastest_within_1pt_ms"] = round(float(within[lat].min()), 3)
        row["speedup"] = round(row["fastest_plain_ms"] / row["fastest_within_1pt_ms"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--files", nargs="*", default=list(FILES), choices=list(FILES))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "autocompress-mp")
    parser.add_argument("--out", type=Path, default=Path("/tmp/third_party_tflite"))
    args = parser.parse_args()
    wheel = fetch(args.cache)
    print(f"{WHEEL} ({wheel.name}), {args.trials} trials per file, 1 worker")
    rows = [run_one(n, FILES[n], wheel, args.out, args.trials) for n in args.files]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()

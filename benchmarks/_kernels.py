"""Kernel-level latency predictors for ``cpu-host``, after nn-Meter: time one op at a time.

A model's latency is predicted as the interpreter's fixed cost per invoke plus the sum of its
ops' times, each op predicted by a regressor for its kind (op type x compute kind: a float
CONV_2D and an int8 CONV_2D are different kernels in XNNPACK). The regressors learn from
single-op micro-models whose shapes are sampled over the range small CNNs and MLPs use; an op's
time is the micro-model's measured latency minus the invoke cost of the same conversion mode
(measured on a model whose only op is a RESHAPE).

Two regressors per kernel, compared with the per-op roofline (one rate per compute kind):

* ``linear``: non-negative least squares on [1, MACs, input elements, output elements, weight
  bytes], weighted by relative error (small and large ops count alike);
* ``forest``: a random forest on the logs of the op's shape features (nn-Meter's choice), which
  captures the kernels' non-linear efficiency (channel counts that fill SIMD tiles or not).

Ops that no micro-model covers (QUANTIZE, DEQUANTIZE, ...) fall back to the linear model of the
same op type, then to the roofline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from autocompress.hardware.flatbuffer import Graph, OpInfo

MODES = (("none", "float32"), ("int8", "int8"), ("dynamic", "hybrid"))


@dataclass(frozen=True)
class Micro:
    """One single-op micro-model: a builder and the op type it times."""

    op: str
    build: Callable[[], object]


def micro_models(seed: int = 0) -> list[Micro]:
    """Single-op models with shapes sampled over what small CNNs and MLPs use (student widths
    from 0.25 to 1 of 32-128 channel layers, 8-32 pixel maps), plus one RESHAPE-only model that
    measures the fixed invoke cost."""
    import tf_keras as keras

    L = keras.layers
    rng = np.random.default_rng(seed)
    channels = [1, 3, 8, 16, 24, 32, 48, 64, 72, 96, 128]
    out: list[Micro] = [
        Micro("RESHAPE", lambda: keras.Sequential([L.Input((4, 4, 8)), L.Flatten()]))
    ]
    for _ in range(48):
        size = int(rng.choice([8, 16, 32]))
        cin, cout = int(rng.choice(channels)), int(rng.choice(channels[2:]))
        k = int(rng.choice([1, 3, 3, 3, 5]))
        stride = int(rng.choice([1, 1, 1, 2]))
        out.append(
            Micro(
                "CONV_2D",
                lambda s=size, a=cin, b=cout, kk=k, st=stride: keras.Sequential(
                    [
                        L.Input((s, s, a)),
                        L.Conv2D(b, kk, strides=st, padding="same", activation="relu"),
                    ]
                ),
            )
        )
    for _ in range(10):
        size, c = int(rng.choice([8, 16, 32])), int(rng.choice(channels[2:]))
        stride = int(rng.choice([1, 2]))
        out.append(
            Micro(
                "DEPTHWISE_CONV_2D",
                lambda s=size, a=c, st=stride: keras.Sequential(
                    [
                        L.Input((s, s, a)),
                        L.DepthwiseConv2D(3, strides=st, padding="same", activation="relu"),
                    ]
                ),
            )
        )
    for _ in range(10):
        size, c = int(rng.choice([8, 16, 32])), int(rng.choice(channels[2:]))
        out.append(
            Micro(
                "MAX_POOL_2D",
                lambda s=size, a=c: keras.Sequential([L.Input((s, s, a)), L.MaxPool2D()]),
            )
        )
    for _ in range(16):
        n_in = int(rng.choice([64, 128, 256, 384, 512, 864, 1024, 1536, 3072]))
        n_out = int(rng.choice([10, 16, 32, 64, 96, 128, 256]))
        act = str(rng.choice(["relu", "linear"]))
        out.append(
            Micro(
                "FULLY_CONNECTED",
                lambda a=n_in, b=n_out, f=act: keras.Sequential(
                    [L.Input((a,)), L.Dense(b, activation=f)]
                ),
            )
        )
    for n in (10, 32, 100):
        out.append(Micro("SOFTMAX", lambda a=n: keras.Sequential([L.Input((a,)), L.Softmax()])))
    for size, c in ((4, 32), (8, 64), (4, 96), (2, 128)):
        out.append(
            Micro(
                "MEAN",
                lambda s=size, a=c: keras.Sequential(
                    [L.Input((s, s, a)), L.GlobalAveragePooling2D()]
                ),
            )
        )
    for size, c in ((8, 16), (16, 32), (8, 64), (32, 16)):

        def add(s: int = size, a: int = c) -> object:
            x = L.Input((s, s, a))  # one input (the conversion calibrates one): x + x
            return keras.Model(x, L.Add()([x, x]))

        out.append(Micro("ADD", add))
    return out


def features(graph: Graph, op: OpInfo) -> np.ndarray:
    """[MACs, input elements, output elements, weight bytes, in channels, out channels,
    kernel area, output pixels]: the shape of the work an op does."""
    ins = [graph.tensors[t] for t in op.inputs if 0 <= t < len(graph.tensors)]
    acts = [t for t in ins if not t.constant]
    out = graph.tensors[op.outputs[0]] if op.outputs else None
    weight = next((t for t in ins if t.constant and len(t.shape) in (2, 4)), None)
    area, cin, cout = 1, 0, 0
    if weight is not None and op.name == "CONV_2D":
        cout, kh, kw, cin = weight.shape
        area = kh * kw
    elif weight is not None and op.name == "DEPTHWISE_CONV_2D":
        _, kh, kw, cout = weight.shape
        cin, area = cout, kh * kw
    elif weight is not None and op.name == "FULLY_CONNECTED":
        cout, cin = weight.shape
    else:
        cin = acts[0].shape[-1] if acts and acts[0].shape else 0
        cout = out.shape[-1] if out is not None and out.shape else 0
    out_elems = out.elements if out is not None else 0
    pixels = out_elems // cout if cout else out_elems
    return np.array(
        [
            op.macs,
            sum(t.elements for t in acts),
            out_elems,
            op.weight_bytes,
            cin,
            cout,
            area,
            pixels,
        ],
        dtype=float,
    )


def _linear_row(f: np.ndarray) -> np.ndarray:
    return np.array([1.0, f[0], f[1], f[2], f[3]])


@dataclass
class KernelPredictor:
    """Invoke cost per conversion mode plus one regressor per (op type, compute kind)."""

    kind: str  # "linear" or "forest"
    invoke_s: dict[str, float] = field(default_factory=dict)  # by compute kind of the file
    linear: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    forest: dict[tuple[str, str], object] = field(default_factory=dict)

    def fit(self, samples: list[tuple[str, OpInfo, np.ndarray, float]]) -> KernelPredictor:
        """``samples``: (file compute kind, op, features, op seconds) of single-op models."""
        from scipy.optimize import nnls
        from sklearn.ensemble import RandomForestRegressor

        groups: dict[tuple[str, str], list[tuple[np.ndarray, float]]] = {}
        for _, op, f, seconds in samples:
            groups.setdefault((op.name, op.compute), []).append((f, max(seconds, 1e-7)))
        for key, items in groups.items():
            x = np.array([_linear_row(f) for f, _ in items])
            y = np.array([s for _, s in items])
            rows = x / y[:, None]  # relative error: each row divided by its target
            scale = np.maximum(np.abs(rows).max(axis=0), 1e-30)
            coef, _ = nnls(rows / scale, np.ones(len(y)))
            self.linear[key] = coef / scale
            if self.kind == "forest" and len(items) >= 5:
                model = RandomForestRegressor(n_estimators=200, random_state=0, min_samples_leaf=1)
                model.fit(np.log1p(np.array([f for f, _ in items])), np.log(y))
                self.forest[key] = model
        return self

    def op_seconds(self, graph: Graph, op: OpInfo) -> float | None:
        key = (op.name, op.compute)
        f = features(graph, op)
        if key in self.forest:
            model = self.forest[key]
            return float(np.exp(model.predict(np.log1p(f)[None])[0]))  # type: ignore[attr-defined]
        coef = self.linear.get(key)
        if coef is None:  # same op type, other compute kind: better than nothing
            coef = next((c for (name, _), c in self.linear.items() if name == op.name), None)
        return None if coef is None else float(_linear_row(f) @ coef)


def file_kind(graph: Graph) -> str:
    """The compute kind of a file's heaviest op (which invoke cost applies)."""
    ops = [op for op in graph.ops if op.macs] or graph.ops
    return max(ops, key=lambda op: op.macs).compute if ops else "float32"

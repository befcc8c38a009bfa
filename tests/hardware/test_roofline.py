"""The roofline simulator: 2:4-sparse weights are found in the file and sped up only where the
profile's hardware exploits them."""

from __future__ import annotations

import numpy as np
import pytest

from autocompress.hardware.flatbuffer import read_tflite
from autocompress.hardware.profile import HardwareProfile
from autocompress.hardware.roofline import simulate_roofline
from tests.hardware.conftest import to_tflite


def _model(pattern: str):
    """conv 1x1 (64 -> 64 ch) on 16x16 and dense 64 -> 32, kernels dense, 2:4 or almost 2:4."""
    import tf_keras as keras

    model = keras.Sequential(
        [
            keras.layers.Input((16, 16, 64), batch_size=1),
            keras.layers.Conv2D(64, 1),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(32),
        ]
    )
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") + 0.1 for w in model.get_weights()]
    if pattern != "dense":
        for i, kernel in enumerate((weights[0], weights[2])):
            flat = kernel.reshape(-1, kernel.shape[-1])  # (inputs, outputs)
            flat[0::4] = 0.0  # two zeros in every group of four consecutive inputs
            flat[2::4] = 0.0
            if pattern == "broken" and i == 0:
                flat[0, 5] = 1.0  # one group of one output keeps three non-zeros
    model.set_weights(weights)
    return model


def _profile(speedup: dict[str, float]) -> HardwareProfile:
    # Compute-bound on purpose (huge bandwidth, no overheads), so the MAC rate decides.
    return HardwareProfile.from_dict(
        {
            "name": "sparse-gpu",
            "backend": "roofline",
            "roofline": {
                "macs_per_s": {"float32": 1e9, "int8": 1e9},
                "elementwise_per_s": 1e12,
                "bandwidth_bytes_per_s": 1e15,
                **({"sparse_2_4_speedup": speedup} if speedup else {}),
            },
        }
    )


@pytest.mark.parametrize("mode", ["none", "int8"])
def test_reader_finds_the_2_4_pattern(mode: str) -> None:
    flags = {
        pattern: [
            op.sparse_2_4 for op in read_tflite(to_tflite(_model(pattern), mode)).ops if op.macs
        ]
        for pattern in ("dense", "2:4", "broken")
    }
    assert flags["dense"] == [False, False]
    assert flags["2:4"] == [True, True]
    assert flags["broken"] == [False, True]  # the conv has one group with three non-zeros


def test_2_4_speeds_up_only_where_the_profile_says_so() -> None:
    dense = to_tflite(_model("dense"))
    sparse = to_tflite(_model("2:4"))
    exploits = _profile({"float32": 2.0})
    ignores = _profile({})
    times = {
        (name, hw.name + str(bool(hw.roofline.sparse_2_4_speedup))): simulate_roofline(
            data, read_tflite(data), hw
        ).median_ms
        for name, data in (("dense", dense), ("sparse", sparse))
        for hw in (exploits, ignores)
    }
    assert times[("sparse", "sparse-gpuFalse")] == pytest.approx(
        times[("dense", "sparse-gpuFalse")]
    )
    assert times[("dense", "sparse-gpuTrue")] == pytest.approx(times[("dense", "sparse-gpuFalse")])
    # All MACs are in the two 2:4 ops: compute-bound time halves.
    assert times[("sparse", "sparse-gpuTrue")] == pytest.approx(
        times[("dense", "sparse-gpuTrue")] / 2, rel=0.02
    )
    details = simulate_roofline(sparse, read_tflite(sparse), exploits).details
    assert details["sparse_2_4_ops"] == 2


def test_speedup_keys_are_compute_kinds() -> None:
    from autocompress.errors import InputError

    with pytest.raises(InputError, match="unknown compute kind 'fp8'"):
        _profile({"fp8": 2.0})

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autocompress.errors import InputError
from autocompress.hardware import list_profiles, load_profile
from autocompress.hardware.profile import HardwareProfile


def test_shipped_cpu_host_profile() -> None:
    assert "cpu-host" in list_profiles()
    profile = load_profile("cpu-host")
    assert profile.backend == "measure" and profile.measure.threads == 1


def test_unknown_profile_lists_known_ones() -> None:
    with pytest.raises(InputError) as info:
        load_profile("tpu-v9")
    assert "cpu-host" in str(info.value) and str(info.value).startswith("tpu-v9:")


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"name": "x", "backend": "guess"}, "backend 'guess'"),
        ({"name": "x"}, "missing required key 'backend'"),
        ({"name": "x", "backend": "measure", "thread": 2}, "unknown key 'thread'"),
        ({"name": "x", "backend": "measure", "measure": {"threads": 0}}, "threads"),
        ({"name": "x", "backend": "measure", "measure": {"min_runs": "many"}}, "min_runs"),
        ({"name": "x", "backend": "measure", "max_model_bytes": -1}, "max_model_bytes"),
        ({"name": "", "backend": "measure"}, "name"),
    ],
)
def test_bad_profile_gives_clear_error(doc: dict, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        HardwareProfile.from_dict(doc, source="p.yaml")
    assert str(info.value).startswith("p.yaml") and fragment in str(info.value)


def test_profile_from_user_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nbackend: measure\nmeasure: {threads: 2, min_runs: 10}\n")
    profile = load_profile(path)
    assert profile.name == "mine" and profile.measure.threads == 2


MCU_PROFILES = ("nucleo-l4r5zi", "xg24-dk2601b", "ek-ra8d1")


@pytest.fixture()
def tflm_installed(monkeypatch) -> None:
    """As if ``autocompress[mcu]`` were installed, whether or not it is (loading a profile
    only asks whether the package is there)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "tflite_micro" else real(name, *a),
    )


@pytest.mark.parametrize("name", list_profiles())
def test_every_shipped_profile_loads(name: str, tflm_installed) -> None:
    profile = load_profile(name)
    assert profile.name == name
    if name in MCU_PROFILES:
        assert profile.backend == "tflm" and profile.mcu is not None and profile.integer_io
        assert profile.quantization == ("int8", "int8_symmetric")
        assert profile.max_ram_bytes and profile.max_model_bytes


@pytest.mark.parametrize("name", MCU_PROFILES)
def test_tflm_profile_without_the_package_is_one_line(name: str, monkeypatch, capsys) -> None:
    import importlib.util

    from autocompress.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "tflite_micro" else real(n, *a)
    )
    with pytest.raises(InputError) as info:
        load_profile(name)
    assert "pip install 'autocompress[mcu]'" in str(info.value)
    assert main(["estimate", __file__, "--profile", name]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "tflite-micro" in line and "autocompress[mcu]" in line


def test_shipped_set_covers_the_targets() -> None:
    names = set(list_profiles())
    assert {"cpu-host", "edgetpu-usb", "edgetpu-devboard", "pixel2-cpu"} <= names
    assert {"pixel3-gpu", "jetson-nano-trt", "t4-trt", "a100-trt"} <= names
    assert set(MCU_PROFILES) <= names


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"name": "x", "backend": "roofline"}, "needs a 'roofline' section"),
        ({"name": "x", "backend": "edgetpu", "edgetpu": {}}, "needs a 'host' section"),
        (
            {
                "name": "x",
                "backend": "roofline",
                "roofline": {
                    "macs_per_s": {"int4": 1e9},
                    "elementwise_per_s": 1e9,
                    "bandwidth_bytes_per_s": 1e9,
                },
            },
            "unknown compute kind 'int4'",
        ),
        (
            {
                "name": "x",
                "backend": "roofline",
                "roofline": {
                    "macs_per_s": {"int8": -5},
                    "elementwise_per_s": 1e9,
                    "bandwidth_bytes_per_s": 1e9,
                },
            },
            "positive finite number",
        ),
        (
            {
                "name": "x",
                "backend": "roofline",
                "roofline": {"macs_per_s": {"int8": 1e9}, "elementwise_per_s": 1e9},
            },
            "missing required key 'bandwidth_bytes_per_s'",
        ),
        ({"name": "x", "backend": "measure", "max_ram_bytes": "lots"}, "max_ram_bytes"),
        ({"name": "x", "backend": "tflm"}, "needs a 'mcu' section"),
        ({"name": "x", "backend": "measure", "quantization": ["int3"]}, "unknown mode 'int3'"),
        ({"name": "x", "backend": "measure", "quantization": "int8"}, "must be a list"),
        ({"name": "x", "backend": "measure", "integer_io": "yes"}, "integer_io"),
    ],
)
def test_bad_simulated_profile(doc: dict, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        HardwareProfile.from_dict(doc, source="p.yaml")
    assert fragment in str(info.value)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**9),
    st.floats(allow_nan=True),
    st.text(max_size=6),
    st.sampled_from(["measure", "roofline", "edgetpu"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "threads",
                    "macs_per_s",
                    "int8",
                    "float32",
                    "elementwise_per_s",
                    "bandwidth_bytes_per_s",
                    "sram_bytes",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=10,
)
_keys = st.sampled_from(
    ["name", "backend", "measure", "roofline", "edgetpu", "host", "max_ram_bytes", "typo"]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=5))
def test_random_profile_documents_give_profile_or_clean_error(doc: dict) -> None:
    try:
        profile = HardwareProfile.from_dict(doc, source="p.yaml")
    except InputError as exc:
        assert str(exc).startswith("p.yaml") and "\n" not in str(exc)
        return
    assert profile.backend in ("measure", "roofline", "edgetpu")

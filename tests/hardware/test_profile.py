from __future__ import annotations

from pathlib import Path

import pytest

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

from __future__ import annotations

from autocompress.hardware.measure import measure_latency
from autocompress.hardware.profile import HardwareProfile, MeasureSettings
from autocompress.records import Recipe
from autocompress.stages import BuildContext, build_candidate


def test_measurement_follows_benchmark_model_method(tiny_task) -> None:
    teacher = tiny_task.teacher.build()
    tflite, _, _ = build_candidate(teacher, Recipe(), BuildContext(tiny_task.data, teacher))
    settings = MeasureSettings(threads=1, warmup_runs=3, min_runs=40, min_seconds=0.05)
    profile = HardwareProfile(name="t", backend="measure", measure=settings)
    result = measure_latency(tflite, None, profile)
    assert result.runs >= 40
    assert 0 < result.median_ms <= result.p90_ms
    assert result.profile == "t" and result.variation >= 1.0

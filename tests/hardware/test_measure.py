from __future__ import annotations

from autocompress.hardware.measure import measure_latency
from autocompress.hardware.profile import HardwareProfile, MeasureSettings
from autocompress.recipe import Recipe
from autocompress.stages import BuildContext, build_candidate


def test_measurement_follows_benchmark_model_method(tiny_task) -> None:
    teacher = tiny_task.teacher.build()
    tflite, _, _ = build_candidate(teacher, Recipe(), BuildContext(tiny_task.data, teacher))
    settings = MeasureSettings(threads=1, warmup_runs=3, min_runs=40, min_seconds=0.05)
    profile = HardwareProfile(name="t", backend="measure", measure=settings)
    result = measure_latency(tflite, None, profile)
    assert result.runs >= 40
    assert 0 < result.median_ms <= result.p90_ms
    assert result.profile == "t" and result.backend == "measure"


def test_median_and_p90_are_of_the_timed_runs_only(tiny_task, monkeypatch) -> None:
    """With a fake clock in which the i-th invoke takes a known time, the result is exactly the
    statistics of the timed runs: warm-up runs excluded, the loop stopped by its rules."""
    import types

    import numpy as np

    from autocompress.hardware import measure

    teacher = tiny_task.teacher.build()
    tflite, _, _ = build_candidate(teacher, Recipe(), BuildContext(tiny_task.data, teacher))
    clock = {"ns": 0, "calls": 0}
    warmup = 3
    durations_ms = [100.0] * warmup + [float(1 + i % 10) for i in range(1000)]

    class Timed(measure.Interpreter):
        def invoke(self) -> None:
            super().invoke()
            clock["ns"] += int(durations_ms[clock["calls"]] * 1e6)
            clock["calls"] += 1

    fake_time = types.SimpleNamespace(
        perf_counter_ns=lambda: clock["ns"], perf_counter=lambda: clock["ns"] / 1e9
    )
    monkeypatch.setattr(measure, "Interpreter", Timed)
    monkeypatch.setattr(measure, "time", fake_time)
    settings = MeasureSettings(threads=1, warmup_runs=warmup, min_runs=50, min_seconds=0.3995)
    result = measure_latency(tflite, None, HardwareProfile("t", "measure", measure=settings))
    # 50 runs take 275 ms of fake time: the loop goes on to 0.3995 s, i.e. 75 runs (400 ms)
    timed = np.asarray(durations_ms[warmup : warmup + result.runs])
    assert result.runs == 75 and timed.sum() >= 399.5 > timed[:-1].sum()
    assert result.median_ms == np.median(timed)
    assert result.p90_ms == np.percentile(timed, 90)
    assert result.variation == result.p90_ms / result.median_ms

"""Same ops, same latency: candidates whose files differ only in weight values (sparsity,
clustering) share the first measured figure of their op signature; files that run other ops
keep their own; simulated profiles are left alone."""

from __future__ import annotations

import numpy as np

from autocompress.hardware.signature import op_signature
from autocompress.recipe import Recipe
from autocompress.records import LatencyResult, Measurement, TrialRecord
from autocompress.study.timing import SharedTimings


def _record(signature: str, cpu_ms: float, sim_ms: float) -> TrialRecord:
    latency = {
        "cpu-host": LatencyResult("cpu-host", cpu_ms, cpu_ms * 1.1, 50, "measure"),
        "pixel2-cpu": LatencyResult("pixel2-cpu", sim_ms, sim_ms, 0, "roofline"),
    }
    m = Measurement(0.9, 1000, 500, latency, {}, op_signature=signature)
    return TrialRecord(Recipe(), [], m, 1.0)


def test_the_first_figure_of_a_signature_stands_for_the_rest() -> None:
    timings = SharedTimings()
    first = timings.share(3, _record("a", 0.80, 2.0))
    assert first.measurement.latency["cpu-host"].median_ms == 0.80
    twin = timings.share(5, _record("a", 0.63, 2.5)).measurement.latency
    assert twin["cpu-host"].median_ms == 0.80
    assert twin["cpu-host"].details == {"timed_with": 3, "own_median_ms": 0.63}
    assert twin["pixel2-cpu"].median_ms == 2.5  # simulated: a function of the file
    other = timings.share(6, _record("b", 0.5, 1.0)).measurement.latency
    assert other["cpu-host"].median_ms == 0.5 and "timed_with" not in other["cpu-host"].details
    again = timings.share(3, first)  # the first itself, told again (a resume)
    assert again.measurement.latency["cpu-host"].median_ms == 0.80


def test_dense_files_with_other_weights_have_one_signature(tiny_task) -> None:
    from autocompress.stages.convert import to_tflite

    model = tiny_task.teacher.build()
    plain = to_tflite(model, "none")
    weights = model.get_weights()
    model.set_weights([np.where(np.abs(w) < np.median(np.abs(w)), 0, w) for w in weights])
    sparse = to_tflite(model, "none")  # half the weights zero: another file, the same ops
    assert plain != sparse and op_signature(plain) == op_signature(sparse)
    assert op_signature(to_tflite(model, "float16")) != op_signature(plain)

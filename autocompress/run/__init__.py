"""A finished run, and what reads or extends it: the last step of the flow.

* ``rundir.py``: the run directory's files (atomic writes, the study's name, the trials table);
* ``cache.py``: the stage cache (``DIR/cache/``: stage outputs shared between trials, read and
  written by :mod:`autocompress.stages.build`);
* ``tables.py``: ``trials.csv`` / ``pareto.csv`` from the study (the search writes them with it);
* ``results.py``: ``show`` / ``pick`` (the front for a profile, limits, the confidence bound);
* ``report.py``: ``report.html`` and its PNG;
* ``export.py``: a chosen candidate as tflite / edgetpu / onnx / saved_model / keras;
* ``retarget.py``: a simulated profile added to a finished run; ``device.py``: a run's files
  timed on the device itself (``autocompress measure``: LiteRT, numpy and PyYAML only, so nothing
  here is imported on the way).
"""

"""Evaluation: what a deployed candidate is worth, measured on the task's data.

* ``deployed.py``: a ``.tflite`` file's quality in the task's metric, size and latency on each
  profile (inputs and outputs matched by signature name);
* ``audit.py``: what it costs beyond its average quality, against the teacher (per class,
  agreement, error quantiles, under input noise);
* ``lineage.py``: where it came from, by content hash;
* ``tolerance.py``: ``--max-drop`` and its ``--confidence`` bound (a paired bootstrap over the
  validation samples); ``evidence.py``: the per-sample evidence a trial leaves for it.

The hardware side (how a latency is measured or simulated) is :mod:`autocompress.hardware`.
"""

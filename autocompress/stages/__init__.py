"""Candidate build stages: one module per compression technique, plus conversion.

A new technique is one declaration in :mod:`autocompress.recipe` plus its stage here (a
:class:`Stage` with ``name``, ``applies(recipe)`` and ``build(model, recipe, ctx)``, placed in
the order of :func:`default_stages`). What the stages share: ``_base.py`` (the build context,
the record), ``training.py`` (fine-tuning), ``teaching.py`` (the teacher's outputs as a loss).
"""

from autocompress.stages._base import BuildContext, CandidateStopped, Stage
from autocompress.stages.build import build_candidate, default_stages

__all__ = ["BuildContext", "CandidateStopped", "Stage", "build_candidate", "default_stages"]

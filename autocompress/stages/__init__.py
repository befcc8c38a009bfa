"""Candidate build stages: one module per compression technique, plus conversion."""

from autocompress.stages._base import BuildContext, CandidateStopped, Stage
from autocompress.stages.build import build_candidate, default_stages

__all__ = ["BuildContext", "CandidateStopped", "Stage", "build_candidate", "default_stages"]

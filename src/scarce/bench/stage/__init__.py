"""The bench's stages, one module each (`scarce.bench.stage.base`: the protocol), in the order they run, their
entries sit in bench.json and their sections in the report. A new stage is its module, its entry here, its test.

The stages not yet moved here (standard, regularized, ensembles) still run from
`scarce.bench.stages` before these."""

from scarce.bench.stage import distillation, population, synthetic
from scarce.bench.stage.base import Measure, Stage, StageContext

STAGES: tuple[Stage, ...] = (distillation.STAGE, synthetic.STAGE, population.STAGE)
"""Every stage of the protocol, in order."""

__all__ = ["STAGES", "StageContext", "Measure", "Stage"]

"""LightningModules: thin orchestration of the stages."""

from lm_guided_cot.modules.distill import DistillationModule

__all__ = ["DistillationModule"]

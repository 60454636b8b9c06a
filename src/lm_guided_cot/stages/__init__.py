"""The training stages as LightningModules (``distill``, ``ppo``), their callbacks and export."""

from lm_guided_cot.stages.curves import LearningCurve, StepHistory
from lm_guided_cot.stages.distill import DistillationModule
from lm_guided_cot.stages.ppo import PPOConfig, PPOModule

__all__ = ["DistillationModule", "LearningCurve", "PPOConfig", "PPOModule", "StepHistory"]

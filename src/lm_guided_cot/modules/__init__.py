"""LightningModules: thin orchestration of the stages; the learning-curve callback."""

from lm_guided_cot.modules.curves import LearningCurve, StepHistory
from lm_guided_cot.modules.distill import DistillationModule
from lm_guided_cot.modules.ppo import PPOModule
from lm_guided_cot.modules.ppo_config import PPOConfig

__all__ = ["DistillationModule", "LearningCurve", "PPOConfig", "PPOModule", "StepHistory"]

"""Stage 2: PPO and the GRPO family on the small LM (``module.PPOModule`` is the recipe)."""

from lm_guided_cot.stages.ppo.config import PPOConfig
from lm_guided_cot.stages.ppo.module import PPOModule

__all__ = ["PPOConfig", "PPOModule"]

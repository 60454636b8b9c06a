"""The three jobs the large LM does, each a configurable prompt plus a robust parser: the
``Reader`` answers, the ``Teacher`` explains, the ``Judge`` scores (README.md, "The large LM")."""

from lm_guided_cot.roles.base import ContextSelection, Role, RoleConfig, record_context
from lm_guided_cot.roles.judge import (
    DEFAULT_ASPECTS,
    Aspect,
    Judge,
    JudgeConfig,
    JudgeOutput,
    judge_counts,
)
from lm_guided_cot.roles.reader import Reader, ReaderConfig, ReaderOutput
from lm_guided_cot.roles.teacher import (
    Demonstration,
    Teacher,
    TeacherConfig,
    TeacherOutput,
    load_demonstrations,
)

__all__ = [
    "DEFAULT_ASPECTS",
    "Aspect",
    "ContextSelection",
    "Demonstration",
    "Judge",
    "JudgeConfig",
    "JudgeOutput",
    "Reader",
    "ReaderConfig",
    "ReaderOutput",
    "Role",
    "RoleConfig",
    "Teacher",
    "TeacherConfig",
    "TeacherOutput",
    "judge_counts",
    "load_demonstrations",
    "record_context",
]

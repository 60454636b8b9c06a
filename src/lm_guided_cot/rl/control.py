"""Things PPO carries from step to step: the KL coefficient and running reward statistics.

Each has ``state_dict``/``load_state_dict`` so that it goes into the Lightning checkpoint
and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import math
from typing import Any


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, coef: float) -> None:
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing changes."""

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Ziegler et al. (2019): steer the KL coefficient so the observed KL tracks ``target``.

    ``coef *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon``
    """

    def __init__(self, init_coef: float, target: float, horizon: int) -> None:
        if target <= 0 or horizon <= 0:
            raise ValueError("the adaptive KL controller needs a positive target and horizon")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
        self.target = float(state["target"])
        self.horizon = int(state["horizon"])


class RunningMoments:
    """Running mean and standard deviation of a stream of scores (Chan et al.'s parallel update)."""

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 1.0
        self.count = 0

    def update(self, values: list[float]) -> None:
        if not values:
            return
        n = len(values)
        batch_mean = sum(values) / n
        batch_var = sum((v - batch_mean) ** 2 for v in values) / n
        total = self.count + n
        delta = batch_mean - self.mean
        if self.count == 0:
            self.mean, self.var = batch_mean, batch_var
        else:
            m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
            self.mean += delta * n / total
            self.var = m2 / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean, self.var, self.count = (
            float(state["mean"]),
            float(state["var"]),
            int(state["count"]),
        )

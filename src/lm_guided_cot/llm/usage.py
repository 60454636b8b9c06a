"""Large-LM usage counters, typed per role; flattened to ``llm/<role>/<counter>`` only for loggers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields


@dataclass
class RoleUsage:
    """Counters for one role (teacher, reader, judge, ...)."""

    requests: int = 0  # calls sent to the server, retries included
    replies: int = 0  # results with text, from the server or the cache
    failures: int = 0  # results that stayed failed after all retries
    retries: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    parse_failures: int = 0  # replies the role's parser could not read (fallback used)
    cached_tokens: int = 0  # prompt + completion tokens of the replies read from the cache

    def __add__(self, other: RoleUsage) -> RoleUsage:
        return RoleUsage(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def __sub__(self, other: RoleUsage) -> RoleUsage:
        return RoleUsage(
            **{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)}
        )


COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(RoleUsage))


def total_usage(usages: Iterable[RoleUsage]) -> RoleUsage:
    """The sum of several roles' counters."""
    total = RoleUsage()
    for usage in usages:
        total = total + usage
    return total


def add_usages(*usages: Mapping[str, RoleUsage]) -> dict[str, RoleUsage]:
    """Counters per role summed over several sources (e.g. clients of different endpoints)."""
    out: dict[str, RoleUsage] = {}
    for source in usages:
        for role, usage in source.items():
            out[role] = out.get(role, RoleUsage()) + usage
    return dict(sorted(out.items()))


def flat_usage(usages: Mapping[str, RoleUsage], prefix: str = "llm") -> dict[str, float]:
    """``{prefix}/{role}/{counter}`` numbers per role and for ``total``, for loggers."""
    out: dict[str, float] = {}
    for role, usage in sorted(usages.items()):
        for name in COUNTERS:
            out[f"{prefix}/{role}/{name}"] = getattr(usage, name)
    total = total_usage(usage for _, usage in sorted(usages.items()))
    for name in COUNTERS:
        out[f"{prefix}/total/{name}"] = getattr(total, name)
    return out


__all__ = [
    "COUNTERS",
    "RoleUsage",
    "add_usages",
    "flat_usage",
    "total_usage",
]

"""Large-LM usage counters, typed per role; flattened to ``llm/<role>/<counter>`` only for loggers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from lm_guided_cot.errors import RunError


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


def too_many_failures(failed: int, calls: int, max_rate: float) -> bool:
    """Whether ``failed`` of ``calls`` reach the fraction ``max_rate`` (``LLMConfig
    .max_failure_rate``; 1.0: every call failed). No failure is never too many."""
    return failed > 0 and calls > 0 and failed / calls >= max_rate


def failure_message(
    what: str,
    failed: int,
    calls: int,
    where: str,
    first_error: str | None,
    max_rate: float = 1.0,
    kind: str = "large-LM",
) -> str:
    """One line for a run whose calls failed: how many, the endpoint and the first error."""
    share = f"all {calls}" if failed == calls else f"{failed} of {calls}"
    limit = f", at least max_failure_rate {max_rate:g} of them" if max_rate < 1 else ""
    return f"{what}: {share} {kind} calls to {where} failed{limit} (first error: {first_error})"


def check_failures(
    what: str,
    failed: int,
    calls: int,
    where: str,
    first_error: str | None,
    max_rate: float = 1.0,
    then: str = "check the large LM's settings (model, api_base, key, server) and run again",
) -> None:
    """Stop a run whose large-LM calls failed too often (``too_many_failures``): ``RunError``
    with ``failure_message``, so that no result, file or update rests on fallbacks."""
    if too_many_failures(failed, calls, max_rate):
        message = failure_message(what, failed, calls, where, first_error, max_rate)
        raise RunError(f"{message}; {then}")


__all__ = [
    "COUNTERS",
    "RoleUsage",
    "add_usages",
    "check_failures",
    "failure_message",
    "flat_usage",
    "too_many_failures",
    "total_usage",
]

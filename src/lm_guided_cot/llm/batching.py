"""A batch of requests made ready to send: each distinct request once (with its cache key and
its sample's parameters), the copies that share its result, and the groups of requests that
share a prompt prefix, sent one after another so a server reuses its KV cache."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lm_guided_cot.llm.cache import cache_key
from lm_guided_cot.llm.calls import LLMRequest, LLMResult
from lm_guided_cot.llm.usage import RoleUsage


@dataclass
class Batch:
    """One ``acomplete`` call: its role's counters, its parameters and, by request, its results."""

    role: str
    params: dict[str, Any]
    usage: RoleUsage
    results: list[LLMResult | None] = field(default_factory=list)


class Job(NamedTuple):
    """A distinct request of a batch: where its result goes, its cache key, what is sent."""

    index: int
    key: str
    messages: list[dict[str, str]]
    params: dict[str, Any]


def plan_jobs(
    requests: Sequence[LLMRequest], model: str, params: dict[str, Any]
) -> tuple[list[Job], list[tuple[int, int]]]:
    """The jobs to send, and the copies as (index, index of the job it copies): the same
    request twice in one batch is sent once and the copies share its result."""
    first_of: dict[str, int] = {}
    copies: list[tuple[int, int]] = []
    jobs = []
    for i, request in enumerate(requests):
        messages = [dict(m) for m in request.messages]
        key = cache_key(model, messages, params, request.sample_index)
        if key in first_of:
            copies.append((i, first_of[key]))
            continue
        first_of[key] = i
        jobs.append(Job(i, key, messages, _sample_params(params, request.sample_index)))
    return jobs, copies


def job_groups(jobs: Sequence[Job], group_prefixes: bool) -> list[list[int]]:
    """Indices into ``jobs``: by shared prompt prefix, or each job alone."""
    if group_prefixes:
        return prefix_groups([_prompt_text(job.messages) for job in jobs])
    return [[j] for j in range(len(jobs))]


def fill_copies(batch: Batch, copies: Sequence[tuple[int, int]]) -> None:
    """Give each copy its original's result, counted as a cache hit when it has a reply."""
    for i, original in copies:
        result = batch.results[original]
        batch.results[i] = dataclasses.replace(result, cached=result.ok)
        if result.ok:
            batch.usage.replies += 1
            batch.usage.cache_hits += 1
            batch.usage.cached_tokens += result.prompt_tokens + result.completion_tokens
        else:
            batch.usage.failures += 1


def _sample_params(params: dict[str, Any], sample_index: int) -> dict[str, Any]:
    """The parameters sample ``sample_index`` is sent with (see ``LLMRequest``): the cache key
    keeps the configured seed, the request gets its own."""
    if not sample_index or params.get("seed") is None:
        return params
    return {**params, "seed": int(params["seed"]) + sample_index}


def _prompt_text(messages: list[dict[str, str]]) -> str:
    return "\x1e".join(f"{m.get('role', '')}\x1f{m.get('content') or ''}" for m in messages)


def prefix_groups(texts: Sequence[str], min_shared: float = 0.5) -> list[list[int]]:
    """Indices grouped by shared prompt prefix, in order of first appearance.

    A prompt joins the first group whose first prompt shares at least ``min_shared`` of the
    shorter of the two (the k samples of a question, the with- and without-rationale calls
    of one question); prompts that share only a few-shot header stay apart.
    """
    groups: list[list[int]] = []
    # Bucketed by a head every two prompts of one group share: at least min_shared of the
    # shortest prompt. (The first 64 characters alone are one bucket when every prompt opens
    # with the same system message, and grouping 10k prompts became quadratic.)
    width = max(64, math.ceil(min_shared * min((len(t) for t in texts), default=0)))
    heads: dict[str, list[int]] = defaultdict(list)  # head -> group indices
    for i, text in enumerate(texts):
        for g in heads[text[:width]]:
            first = texts[groups[g][0]]
            shared = math.ceil(min_shared * min(len(first), len(text)))
            if first[:shared] == text[:shared]:
                groups[g].append(i)
                break
        else:
            heads[text[:width]].append(len(groups))
            groups.append([i])
    return groups


__all__ = ["Batch", "Job", "fill_copies", "job_groups", "plan_jobs", "prefix_groups"]

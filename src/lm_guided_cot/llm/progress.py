"""A progress bar for one batch of large-LM requests (on the terminal, outside the Trainer)."""

from __future__ import annotations

import sys
import time

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BatchProgress:
    """``advance()`` as requests finish; ``close()`` at the end of the batch.

    Only shown where nothing else draws live: the client shows it inside a
    ``LLMClient.progress`` block, which the teacher build and ``lmcot evaluate`` open and
    the Trainer's loops (with their own progress bar) do not. Where stdout is not a terminal
    (a log file) it prints a plain line every ``every_seconds`` and at the end instead, since
    a live bar would show nothing there until it stops.
    """

    def __init__(self, description: str, total: int, every_seconds: float = 30.0) -> None:
        self._description = description
        self._total = total
        self._done = 0
        self._every = every_seconds
        self._start = self._last = time.monotonic()
        self._printed = -1  # the count of the last printed line: close() does not repeat it
        self._progress: Progress | None = None
        if sys.stdout.isatty():
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self._task = self._progress.add_task(description, total=total)
            self._progress.start()

    def advance(self, n: int = 1) -> None:
        self._done += n
        if self._progress is not None:
            self._progress.advance(self._task, n)
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._print()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        elif self._printed != self._done:
            self._print()

    def _print(self) -> None:
        self._printed = self._done
        elapsed = time.monotonic() - self._start
        left = (self._total - self._done) * elapsed / self._done if self._done else float("nan")
        print(
            f"{self._description}: {self._done}/{self._total}, {elapsed:.0f} s elapsed"
            + (f", about {left:.0f} s left" if self._done < self._total and self._done else ""),
            flush=True,
        )

"""A progress bar for one batch of large-LM requests (on the terminal, outside the Trainer)."""

from __future__ import annotations

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
    the Trainer's loops (with their own progress bar) do not.
    """

    def __init__(self, description: str, total: int) -> None:
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
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()

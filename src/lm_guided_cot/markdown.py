"""GitHub-flavoured Markdown tables: the results files, the README's tables, TensorBoard's Text tab."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """One line per row; a cell's ``|`` is escaped and its line breaks become spaces."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def print_rows(console, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on ``console`` (a rich ``Console``): drawn to fit a terminal, and as a Markdown
    table where the output is a file or a pipe (nohup and SLURM logs, ``| less``, CI), which keeps
    every name and number whole where rich would cut cells to 80 columns."""
    if not console.is_terminal:
        text = f"{title}\n\n{markdown_table(header, [[str(v) for v in r] for r in rows])}\n"
        console.print(text, soft_wrap=True, markup=False, highlight=False, crop=False)
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)

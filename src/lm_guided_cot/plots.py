"""Figures as PNG files: matplotlib's Agg canvas, no pyplot and no display.

A figure is built on its own ``Figure`` (no pyplot state shared between threads or runs) and
written whole or not at all, like every other output file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from lm_guided_cot.files import write_atomically

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def new_figure(
    rows: int = 1, columns: int = 1, sharex: bool = False, **kwargs: Any
) -> tuple[Any, Any]:
    """A matplotlib ``Figure`` (``kwargs``: ``figsize``...) on an Agg canvas, and its
    ``rows`` x ``columns`` axes as a 2-D array (``Figure.subplots``)."""
    # imported here: matplotlib takes a moment to import, and only the figures need it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, sharex=sharex, squeeze=False)


def save_png(figure: Any, path: Path | str, dpi: int = 120) -> Path:
    """``figure`` as a PNG at ``path`` (a temp file, then a rename)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    write_atomically(path, buffer.getvalue())
    return Path(path)

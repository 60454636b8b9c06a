"""Multi-hop QA data: typed records, checked readers and the small LM's prompts and targets.

The names below are imported from their modules on first use, so that importing one light
module of this package (scoring a prediction file) loads neither torch nor ``datasets``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each name this package exports, and the module of the package that defines it.
_MODULE_OF = {
    "HOTPOTQA": "records",
    "TWOWIKI": "records",
    "DataFormatError": "errors",
    "Paragraph": "records",
    "PromptBuilder": "prompts",
    "PromptCollator": "batches",
    "PromptConfig": "prompts",
    "QARecord": "records",
    "ReadResult": "readers",
    "RecordBatch": "batches",
    "SupportingFact": "records",
    "read_split": "readers",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # found here from now on, without a second look-up
    return value


__all__ = [
    "HOTPOTQA",
    "TWOWIKI",
    "DataFormatError",
    "Paragraph",
    "PromptBuilder",
    "PromptCollator",
    "PromptConfig",
    "QARecord",
    "ReadResult",
    "RecordBatch",
    "SupportingFact",
    "read_split",
]

"""Multi-hop QA data: typed records, checked readers, prompts and LightningDataModules.

Names are imported on first use, so that low-level modules (``records``, ``prompts``) can be
imported by ``llm/`` without pulling in the DataModules, which use ``llm/`` themselves.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "HotpotQADataModule": "datamodule",
    "MultiHopQADataModule": "datamodule",
    "TwoWikiMultiHopQADataModule": "datamodule",
    "DataFormatError": "errors",
    "PromptBuilder": "prompts",
    "PromptConfig": "prompts",
    "ReadResult": "readers",
    "read_split": "readers",
    "HOTPOTQA": "records",
    "TWOWIKI": "records",
    "Paragraph": "records",
    "QARecord": "records",
    "SupportingFact": "records",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Multi-hop QA data: typed records, checked readers and the small LM's prompts and targets."""

from lm_guided_cot.data.batches import PromptCollator, RecordBatch
from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.data.prompts import PromptBuilder, PromptConfig
from lm_guided_cot.data.readers import ReadResult, read_split
from lm_guided_cot.data.records import HOTPOTQA, TWOWIKI, Paragraph, QARecord, SupportingFact

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

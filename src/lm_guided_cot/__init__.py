"""lm-guided-cot: a small LM learns to write the rationales a frozen large LM answers with."""

import os

# litellm fetches a model price table from the network at import unless told to use its copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

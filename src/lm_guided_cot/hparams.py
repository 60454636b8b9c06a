"""Hyperparameters that survive a checkpoint: dataclass arguments are stored as plain dicts.

Lightning checkpoints load with ``torch.load(weights_only=True)``, which refuses arbitrary
classes; and LightningCLI hands modules plain dicts anyway. So modules save dataclass
arguments with ``as_plain`` and accept either form through ``as_dataclass``.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from typing import Any, TypeVar

from lm_guided_cot.errors import ConfigurationError

T = TypeVar("T")


def as_plain(value: Any) -> Any:
    """A dataclass (nested ones too) as a dict; anything else unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def save_hparams(module: Any, ignore: tuple[str, ...] = (), **configs: Any) -> None:
    """``module.save_hyperparameters()`` from the caller's ``__init__``, with the dataclass
    arguments in ``configs`` stored as plain dicts and the arguments in ``ignore`` left out."""
    frame = inspect.currentframe().f_back  # the caller's arguments, as Lightning reads them
    module.save_hyperparameters(ignore=[*ignore, *configs], frame=frame)
    module.hparams.update({name: as_plain(value) for name, value in configs.items()})


def as_dataclass(cls: type[T], value: Any, option: str | None = None) -> T:
    """``value`` as an instance of dataclass ``cls`` (a copy), from an instance or a dict.

    Anything else raises ``ConfigurationError`` naming ``option`` (default: the class).
    """
    if isinstance(value, cls):
        return dataclasses.replace(value)
    if not isinstance(value, dict):
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigurationError(
            f"{option or cls.__name__}: expected a mapping of {cls.__name__}'s fields ({names}), "
            f"got a {type(value).__name__}: {shown}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in value:
            continue
        item = value[field.name]
        target = dataclass_in(hints[field.name])
        kwargs[field.name] = (
            as_dataclass(target, item) if target and isinstance(item, dict) else item
        )
    return cls(**kwargs)


def dataclass_in(hint: Any) -> type | None:
    """The dataclass in a type hint such as ``X``, ``X | None`` or ``Optional[X]``."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None

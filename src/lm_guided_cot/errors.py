"""The errors a user can act on: the ``lmcot`` command prints their message alone.

Each names what to fix (the file, record and field, or the option); ``exit_code`` is 2 for
bad usage, configuration or input and 1 for a run that failed. Anything else that escapes a
verb is a bug and keeps its traceback.
"""

from __future__ import annotations

import math


class LmcotError(Exception):
    """A failure its message explains."""

    exit_code = 1


class ConfigurationError(LmcotError, ValueError):
    """A bad option or configuration value; the message names the option."""

    exit_code = 2


class InputError(LmcotError, ValueError):
    """A data, prediction or cache file that cannot be used; the message names the file."""

    exit_code = 2


class RunError(LmcotError, RuntimeError):
    """A run that could not do its job (every call failed, a server did not start)."""

    exit_code = 1


def check_at_least(option: str, value: float | None, minimum: float) -> None:
    """Refuse ``value < minimum`` (``None`` passes: the option is off)."""
    if value is not None and not value >= minimum:  # `not >=` also refuses NaN
        raise ConfigurationError(f"{option} must be at least {minimum}, got {value}")


def check_positive(option: str, value: float | None) -> None:
    """Refuse ``value <= 0`` and NaN (``None`` passes)."""
    if value is not None and not value > 0:
        raise ConfigurationError(f"{option} must be positive, got {value}")


def check_between(
    option: str,
    value: float | None,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """Refuse values outside ``[low, high]`` (an end left out with ``open_low``/``open_high``)."""
    if value is None:
        return
    low_ok = value > low if open_low else value >= low
    high_ok = value < high if open_high else value <= high
    if not (low_ok and high_ok):  # NaN fails both
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ConfigurationError(f"{option} must be in {interval}, got {value}")


def check_probability(option: str, value: float | None, *, open_low: bool = False) -> None:
    """Refuse values outside [0, 1] (or (0, 1] with ``open_low``)."""
    check_between(option, value, 0, 1, open_low=open_low)


def check_finite(option: str, value: float | None) -> None:
    """Refuse NaN and infinities."""
    if value is not None and not math.isfinite(value):
        raise ConfigurationError(f"{option} must be a finite number, got {value}")


class MissingFileError(InputError, FileNotFoundError):
    """A file or folder that a configuration or an argument names does not exist."""


class OutputError(LmcotError, OSError):
    """A file or folder the run must write that cannot be written; the message names it and
    the option that set it. A full disk is a run that failed (1); a read-only, forbidden or
    misnamed place is a path to change (2)."""

    def __init__(self, message: str, *, full_disk: bool = False) -> None:
        super().__init__(message)
        self.exit_code = 1 if full_disk else 2

"""The option checks: what they refuse, what they let through, and how they say it."""

from __future__ import annotations

import re

import pytest

from lm_guided_cot.errors import (
    ConfigurationError,
    check_at_least,
    check_between,
    check_finite,
    check_positive,
    check_probability,
)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: check_at_least("A.n", -1, 0), "A.n must be at least 0, got -1"),
        (lambda: check_at_least("A.x", float("nan"), 0), "A.x must be at least 0, got nan"),
        (lambda: check_positive("A.t", 0.0), "A.t must be positive, got 0.0"),
        (lambda: check_between("A.port", 0, 1, 65535), "A.port must be in [1, 65535], got 0"),
        (
            lambda: check_between("A.c", 1.0, 0, 1, open_low=True, open_high=True),
            "A.c must be in (0, 1), got 1.0",
        ),
        (lambda: check_between("A.c", float("nan"), 0, 1), "A.c must be in [0, 1], got nan"),
        (lambda: check_probability("A.p", 1.5), "A.p must be in [0, 1], got 1.5"),
        (lambda: check_probability("A.p", 0.0, open_low=True), "A.p must be in (0, 1], got 0.0"),
        (lambda: check_finite("A.w", float("inf")), "A.w must be a finite number, got inf"),
    ],
)
def test_checks_refuse_naming_the_option(check, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        check()


@pytest.mark.parametrize(
    "check",
    [
        lambda: check_at_least("A.n", 0, 0),
        lambda: check_positive("A.t", 1e-9),
        lambda: check_between("A.port", 1, 1, 65535),
        lambda: check_between("A.port", 65535, 1, 65535),
        lambda: check_between("A.c", 0.5, 0, 1, open_low=True, open_high=True),
        lambda: check_probability("A.p", 0),
        lambda: check_probability("A.p", 1, open_low=True),
        lambda: check_finite("A.w", -3.0),
        lambda: check_between("A.off", None, 0, 1),
        lambda: check_at_least("A.off", None, 1),
        lambda: check_positive("A.off", None),
        lambda: check_probability("A.off", None),
        lambda: check_finite("A.off", None),
    ],
)
def test_checks_let_the_boundaries_and_none_through(check):
    check()


def test_a_configuration_error_is_a_value_error_with_exit_code_2():
    with pytest.raises(ValueError) as caught:
        check_at_least("A.n", -1, 0)
    assert caught.value.exit_code == 2

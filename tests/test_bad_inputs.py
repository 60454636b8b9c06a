"""Every verb on every bad input of ``tests/bad_input_cases.py``, run as a subprocess: a non-zero
exit, no traceback, a message naming the file, option or variable, and no planted key in the
output or in any file the run wrote."""

from __future__ import annotations

import pytest

from tests.bad_input_cases import CASES, can_mount, problems, run_case


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_one_clear_message(case, tmp_path, tiny_causal_dir):
    if case.mounts and not can_mount():
        pytest.skip("needs `unshare -m` to mount a read-only or full tmpfs (root or userns)")
    outcome = run_case(case, tmp_path / "case", tiny_causal_dir)
    found = problems(case, outcome, tmp_path / "case")
    assert not found, "\n".join([*found, "--- output:", outcome.output[-4000:]])

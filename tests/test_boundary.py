"""The CLI's edge: which errors get one message, the exit codes, --debug, and masked output."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from lm_guided_cot.cli.errors import (
    debug_requested,
    explained,
    masked_output,
    run_verb,
    silence_library_noise,
)
from lm_guided_cot.data.errors import DataFormatError
from lm_guided_cot.errors import ConfigurationError, RunError
from lm_guided_cot.llm.secrets import redact, register_secret_variable


def _raise(err: BaseException):
    def run():
        raise err

    return run


def test_project_error_prints_one_line_and_its_exit_code(capsys):
    with pytest.raises(SystemExit) as done:
        run_verb("ask", _raise(ConfigurationError("LLMConfig.timeout must be positive, got 0")))
    assert done.value.code == 2
    assert capsys.readouterr().err == "lmcot ask: LLMConfig.timeout must be positive, got 0\n"
    with pytest.raises(SystemExit) as done:
        run_verb("rationales", _raise(RunError("every call failed")))
    assert done.value.code == 1


def test_wrapped_project_error_is_found_behind_the_wrapper(capsys):
    # what jsonargparse and datasets do to the errors of the code they call
    cause = DataFormatError("train.jsonl", 3, "answer", "missing", line=4)
    try:
        try:
            raise cause
        except DataFormatError as err:
            raise ValueError("Does not validate against any of the Union subtypes") from err
    except ValueError as wrapper:
        assert explained(wrapper) is cause
    with pytest.raises(SystemExit) as done:
        run_verb("fit", _raise(RuntimeError("generation failed")))  # a bug: traceback, exit 1
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: generation failed" in err


def test_debug_keeps_the_traceback_of_project_errors(capsys, monkeypatch):
    # setenv, not delenv: it records the variable's state, so what debug_requested sets is undone
    monkeypatch.setenv("LMCOT_DEBUG", "")
    args, debug = debug_requested(["fit", "--debug", "-c", "x.yaml"])
    assert (args, debug) == (["fit", "-c", "x.yaml"], True)
    assert debug_requested(["fit"])[1]  # the flag became the variable, for DDP ranks
    monkeypatch.setenv("LMCOT_DEBUG", "0")
    assert not debug_requested(["fit"])[1]
    with pytest.raises(SystemExit) as done:
        run_verb("ask", _raise(ConfigurationError("bad")), debug=True)
    assert done.value.code == 2 and "Traceback" in capsys.readouterr().err


def test_redact_masks_environment_keys_fields_and_key_shapes(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-0123456789")
    monkeypatch.setenv("MY_SERVER", "server-key-0123456789")
    register_secret_variable("MY_SERVER")
    text = (
        "key sk-env-0123456789, server-key-0123456789; extra_params={'api_key': 'abc123456'} "
        'api_key: plain12345 "password": "hunter2!" Authorization: Bearer abcdefgh12345678 '
        "hf_abcdefghijklmnopqrstu max_tokens: 256 tokens_per_minute=3"
    )
    masked = redact(text)
    for secret in (
        "sk-env",
        "server-key",
        "abc123456",
        "plain12345",
        "hunter2",
        "abcdefgh1",
        "hf_",
    ):
        assert secret not in masked
    assert "max_tokens: 256 tokens_per_minute=3" in masked  # not every 'token' is a secret


def test_redact_masks_the_user_info_of_urls():
    text = (
        "large-LM call failed: http://user:hunter2pass@host:8000/v1: APIConnectionError "
        "(api_base='https://tok3n-only@example.org/v1') see https://example.org/a@b and "
        "mail me@example.org"
    )
    masked = redact(text)
    assert "hunter2pass" not in masked and "tok3n-only" not in masked
    assert "http://***@host:8000/v1" in masked and "https://***@example.org/v1" in masked
    assert "https://example.org/a@b" in masked and "me@example.org" in masked  # no user-info


def test_masked_output_covers_print_and_logging_handlers(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-0123456789")
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    logger = logging.getLogger("lmcot-test-masking")
    handler = logging.StreamHandler(sys.stderr)  # holds the stream, as library handlers do
    logger.addHandler(handler)
    try:
        with masked_output():
            print("printed sk-env-0123456789")
            logger.warning("logged sk-env-0123456789")
        assert handler.stream is err  # restored
    finally:
        logger.removeHandler(handler)
    assert "sk-env" not in out.getvalue() + err.getvalue()
    assert out.getvalue() == "printed ***\n" and "logged ***" in err.getvalue()


def test_library_noise_is_dropped_and_the_rest_kept(caplog):
    silence_library_noise()
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO):
        tips.info("💡 Tip: For seamless cloud uploads and versioning, try installing litmodels")
        tips.info("`Trainer.fit` stopped: `max_steps=1` reached.")
    assert [r.getMessage() for r in caplog.records] == [
        "`Trainer.fit` stopped: `max_steps=1` reached."
    ]


def test_a_config_file_that_is_not_yaml_is_named(tmp_path):
    from lm_guided_cot.cli.errors import check_config_files
    from lm_guided_cot.errors import InputError

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("trainer: {max_steps: 1}\n")
    bad.write_text("trainer: {max_steps: 1\nmodel: x\n")
    check_config_files(["fit", "-c", str(good), "--config", str(tmp_path / "missing.yaml")])
    for args in (["fit", "-c", str(good), "-c", str(bad)], ["fit", f"--config={bad}"]):
        with pytest.raises(InputError, match=rf"{bad}: not a YAML config \(.*line 2"):
            check_config_files(args)


def test_lightning_checkpoint_warning_for_manual_optimization_is_dropped():
    import warnings

    from lm_guided_cot.cli.errors import silence_library_noise

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_library_noise()
        warnings.warn(
            "Using ModelCheckpoint with manual optimization and every_n_train_steps, but no "
            "pre-optimization state was saved. Example:\ndef training_step(...)",
            UserWarning,
            stacklevel=1,
        )
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]


def test_an_unwritable_output_exits_by_its_kind(capsys):
    from lm_guided_cot.errors import OutputError

    for full_disk, code in ((True, 1), (False, 2)):
        with pytest.raises(SystemExit) as caught:
            run_verb("evaluate", _raise(OutputError("out: why", full_disk=full_disk)))
        assert caught.value.code == code
    assert capsys.readouterr().err == "lmcot evaluate: out: why\n" * 2


def test_ppo_says_once_why_its_checkpoints_hold_the_state_after_the_updates(capsys):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import ModelCheckpoint

    from lm_guided_cot.stages.ppo.module import PPOModule

    for callbacks, said in (
        ([ModelCheckpoint(every_n_train_steps=5)], "lmcot: checkpoints every 5 steps hold"),
        ([ModelCheckpoint()], ""),  # at epoch ends: Lightning has nothing to warn about
    ):
        trainer = SimpleNamespace(checkpoint_callbacks=callbacks, is_global_zero=True)
        PPOModule._say_what_checkpoints_hold(SimpleNamespace(trainer=trainer))
        out = capsys.readouterr().out
        assert out.startswith(said) and out.count("\n") == (1 if said else 0)

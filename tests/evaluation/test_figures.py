"""The figures of `lmcot evaluate`: the pure plots, and evaluate writing them (test server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_guided_cot.datamodules import HotpotQADataModule
from lm_guided_cot.evaluation.bootstrap import bootstrap_mean, paired_bootstrap
from lm_guided_cot.evaluation.figures import (
    DIFFERENCE_TO_STANDARD,
    F1_BY_ROW,
    Interval,
    plot_difference_to_standard,
    plot_f1_by_row,
)
from lm_guided_cot.evaluation.runner import evaluate
from lm_guided_cot.llm.config import LLMConfig
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.helpers import assert_png, evaluation_responder, hotpot_gold_answers

ROWS = [
    Interval("standard prompting", 0.42, 0.35, 0.49),
    Interval("CoT prompting", 0.51, 0.44, 0.58),
    Interval("LM-guided (KD)", 0.47, 0.40, 0.55),
]


def test_plot_f1_by_row_writes_a_png(tmp_path):
    path = plot_f1_by_row(ROWS, tmp_path / "figures" / "f1.png")
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["f1.png"]


def test_plot_difference_to_standard_writes_a_png(tmp_path):
    rows = [
        Interval("CoT prompting", 0.09, 0.02, 0.16),  # above 0
        Interval("LM-guided (KD)", 0.05, -0.01, 0.11),  # straddles 0
        Interval("LM-guided (KD+RL)", -0.04, -0.08, -0.01),  # below 0
    ]
    assert_png(plot_difference_to_standard(rows, tmp_path / "d.png"))


N = 6


def _file_guide(tmp_path: Path, shared_data: Path, name: str, rationale: str) -> dict:
    rows = [json.loads(x) for x in (shared_data / "hotpotqa/validation.jsonl").open()][:N]
    path = tmp_path / f"{name}.jsonl"
    path.write_text(
        "".join(json.dumps({"id": r["id"], "rationale": rationale}) + "\n" for r in rows)
    )
    return {"name": name, "path": str(path)}


def _evaluate(tmp_path, shared_data, server, **kwargs):
    data = HotpotQADataModule(
        test=str(shared_data / "hotpotqa/validation.jsonl"),
        max_eval_examples=N,
        cache_dir=str(tmp_path / "hf"),
    )
    llm = LLMConfig(
        model="openai/fake-large",
        api_base=server.base_url,
        cache_path=str(tmp_path / "llm.sqlite"),
        timeout=5,
    )
    guides = [  # the scripted reader: right with an even-length rationale, wrong with an odd
        _file_guide(tmp_path, shared_data, "even guide", "ab"),
        _file_guide(tmp_path, shared_data, "odd guide", "abc"),
    ]
    return evaluate(
        data,
        llm,
        cot=False,
        judge=None,
        rationale_files=guides,
        bootstrap_resamples=300,
        **kwargs,
    )


@pytest.mark.parametrize("baseline", [None, "odd guide"])
def test_evaluate_draws_both_figures_and_lists_them(tmp_path, shared_data, capsys, baseline):
    """With the default baseline the comparison table has each row against standard
    prompting; with another baseline the figure's differences are bootstrapped apart."""
    out = tmp_path / "eval"
    with FakeLLMServer(responder=evaluation_responder(hotpot_gold_answers(shared_data))) as server:
        report = _evaluate(tmp_path, shared_data, server, output_dir=str(out), baseline=baseline)
    vs_standard = {c.setting for c in report.comparisons if c.baseline == "standard prompting"}
    assert vs_standard == ({"even guide", "odd guide"} if baseline is None else set())
    printed = capsys.readouterr().out
    for name in (F1_BY_ROW, DIFFERENCE_TO_STANDARD):
        assert_png(out / name)
        assert report.files[name] == out / name
        assert f"]({name})" in (out / "results.md").read_text()
        assert str(out / name) in printed.replace("\n", "")
    # the drawn intervals are the bootstrap's: each row's F1, and the comparison table's
    # paired difference to standard prompting
    summary = json.loads((out / "summary.json").read_text())["figures"]
    by_row = {i["name"]: i for i in summary["answer_f1_intervals"]}
    assert list(by_row) == ["standard prompting", "even guide", "odd guide"]
    for result in report.results:
        expected = bootstrap_mean(result.column("f1"), 300, 0.95, 0)
        assert (by_row[result.name]["low"], by_row[result.name]["high"]) == (
            expected.low,
            expected.high,
        )
        assert by_row[result.name]["mean"] == pytest.approx(result.metrics()["answer_f1"])
    assert by_row["even guide"]["mean"] == 1.0 and by_row["odd guide"]["mean"] == 0.0
    differences = {i["name"]: i for i in summary["f1_difference_to_standard"]}
    assert list(differences) == ["even guide", "odd guide"]
    standard = report.result("standard prompting").column("f1")
    for name, difference in differences.items():
        expected = paired_bootstrap(report.result(name).column("f1"), standard, 300, 0.95, 0)
        assert (difference["mean"], difference["low"], difference["high"]) == (
            expected.mean,
            expected.low,
            expected.high,
        )


def test_no_difference_figure_without_standard_prompting(tmp_path, shared_data, capsys):
    out = tmp_path / "eval"
    with FakeLLMServer(responder=evaluation_responder(hotpot_gold_answers(shared_data))) as server:
        report = _evaluate(tmp_path, shared_data, server, standard=False, output_dir=str(out))
    printed = capsys.readouterr().out.replace("\n", " ")
    assert_png(out / F1_BY_ROW)
    assert (
        not (out / DIFFERENCE_TO_STANDARD).exists() and DIFFERENCE_TO_STANDARD not in report.files
    )
    assert f"no standard prompting row, so no {DIFFERENCE_TO_STANDARD}" in " ".join(printed.split())
    assert "no standard prompting row to compare with" in (out / "results.md").read_text()

"""The verbs that need no model start without the heavy packages: ``lmcot --help``,
``lmcot score`` and ``lmcot models list`` import neither torch nor Lightning (nor datasets,
transformers or litellm), so they answer in a fraction of a second (bin/bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import write_json

HEAVY = ("torch", "lightning", "datasets", "transformers", "litellm", "torchmetrics")

_PROBE = """
import json, sys
from lm_guided_cot.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(%r)))
print("HEAVY=" + json.dumps(heavy))
"""


def _heavy_imports(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE % json.dumps(HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("HEAVY=")]
    assert line, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(line[-1].removeprefix("HEAVY="))


@pytest.mark.parametrize("args", [["--help"], [], ["models", "list"], ["score", "--help"]])
def test_light_verbs_import_no_heavy_package(args):
    assert _heavy_imports(*args) == []


def test_scoring_a_gold_file_imports_no_heavy_package(tmp_path, shared_data):
    row = json.loads((shared_data / "hotpotqa/validation.jsonl").read_text().splitlines()[0])
    facts = [
        list(f) for f in zip(row["supporting_facts"]["title"], row["supporting_facts"]["sent_id"])
    ]
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps(row) + "\n")
    pred = tmp_path / "pred.json"
    write_json(pred, {"answer": {row["id"]: row["answer"]}, "sp": {row["id"]: facts}})
    assert _heavy_imports("score", str(pred), str(gold), "--source", "hotpotqa") == []


def test_a_trainer_verb_still_loads_lightning():
    """The probe can fail: `lmcot fit --help` builds LightningCLI."""
    assert "lightning" in _heavy_imports("fit", "--help")

"""One rule for configured paths: where a stage writes its export (``export_dir``) is where
``lmcot reproduce`` and ``--model.init_args.export_dir``'s check look for it (``expand_path``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lm_guided_cot.paths import expand_path
from lm_guided_cot.stages.export import export_dir

CONFIGURED = [
    "$LMCOT_DATA/exports/kd",
    "${LMCOT_DATA}/exports/kd",
    "~/exports/kd",
    "$HOME/exports/kd",
    "runs/kd/export",
    "/abs/exports/kd",
]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fake ``~`` and a CWD whose ``../shared/data`` is ``tmp_path/shared/data``."""
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path / "home"


@pytest.mark.parametrize("data", [None, "/data/here", "~/data"])
@pytest.mark.parametrize("configured", CONFIGURED)
def test_the_export_is_written_where_it_is_looked_for(home, monkeypatch, data, configured):
    if data is None:
        monkeypatch.delenv("LMCOT_DATA", raising=False)
    else:
        monkeypatch.setenv("LMCOT_DATA", data)
    assert export_dir(None, configured) == expand_path(configured)


def test_lmcot_data_unset_is_the_shared_data_folder_next_to_the_cwd(home, monkeypatch):
    monkeypatch.delenv("LMCOT_DATA", raising=False)
    shared = home.parent / "shared" / "data"
    assert expand_path("$LMCOT_DATA/kd") == str(shared / "kd")
    assert expand_path("${LMCOT_DATA}/kd") == str(shared / "kd")
    # a longer name is another variable, left to expandvars (unset: as written)
    monkeypatch.delenv("LMCOT_DATA_DIR", raising=False)
    assert expand_path("$LMCOT_DATA_DIR/kd") == "$LMCOT_DATA_DIR/kd"


def test_home_and_variables_holding_home_are_expanded(home, monkeypatch):
    monkeypatch.setenv("LMCOT_DATA", "~/data")
    assert expand_path("~/exports/kd") == str(home / "exports" / "kd")
    assert expand_path("$LMCOT_DATA/kd") == str(home / "data" / "kd")
    assert expand_path("runs/kd") == "runs/kd"


def test_the_clone_s_configs_are_found_without_config_dir():
    """bin/demo and bin/reproduce name no --config_dir: the package finds its clone's configs
    wherever the verbs' modules live (moving them into cli/ once broke that)."""
    from lm_guided_cot.cli.demo import _config_dir
    from lm_guided_cot.cli.reproduce import _recipe_dir
    from lm_guided_cot.paths import repository_configs

    repo = Path(__file__).resolve().parents[1]
    assert repository_configs() == repo / "configs"
    assert _config_dir(None) == repo / "configs"
    assert _recipe_dir(None, "hotpotqa") == repo / "configs" / "recipe" / "hotpotqa"

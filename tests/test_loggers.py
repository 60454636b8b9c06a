"""configs/logger/: a short PPO fit with each preset, every logger's files read back: the same
metric names, the sample tables, the export in the run's own folder."""

from __future__ import annotations

import csv
import json
import struct
import sys
from pathlib import Path

import pytest
import yaml

from lm_guided_cot.cli import main
from lm_guided_cot.cli.trainer import build_cli
from lm_guided_cot.llm.secrets import redact
from lm_guided_cot.stages.run_logs import append_csv, table_file_stem
from lm_guided_cot.testing.fake_llm import FakeLLMServer
from tests.fit_configs import hotpotqa_data, ppo_fit_config

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("tensorboard", "csv", "wandb", "mlflow")
TABLES = ("train/samples", "val/samples")
# what each logger adds of its own, not the module's metrics
OWN_METRICS = {
    "tensorboard": {"hp_metric"},
    "csv": {"step"},
    "wandb": {"_step", "_runtime", "_timestamp", "trainer/global_step"},
    "mlflow": set(),
}
SOME_METRICS = {
    "epoch",
    "reward/total_mean",
    "reward/answer_mean",
    "kl/mean",
    "kl/coef",
    "ppo/approx_kl",
    "ppo/policy_loss",
    "ppo/value_loss",
    "rationale/length",
    "llm/total/requests",
    "llm/total/cost",
    "val/reward",
}


def _base_config(folder: Path, shared_data: Path, model: Path, url: str) -> Path:
    llm = {"model": "openai/fake-large", "api_base": url, "timeout": 5, "backoff_base": 0.01}
    llm["cache_path"] = str(folder / "llm/cache.sqlite")
    config = ppo_fit_config(
        model,
        {"class_path": "lm_guided_cot.rewards.AnswerReward", "init_args": {"llm": llm}},
        hotpotqa_data(shared_data, folder / "hf", prompt={"max_tokens": 64}),
        seed=0,
        trainer={"max_steps": 2, "log_every_n_steps": 1, "limit_val_batches": 1},
        ppo={
            "rollout": {"max_new_tokens": 4, "do_sample": True},
            "ppo_epochs": 1,
            "minibatch_size": 4,
        },
        num_logged_examples=2,
    )
    path = folder / "ppo.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data, tiny_causal_dir) -> Path:
    """``lmcot fit -c ppo.yaml -c configs/logger/<preset>.yaml`` for each preset: ``<root>/<preset>``."""
    root = tmp_path_factory.mktemp("loggers")
    with pytest.MonkeyPatch.context() as mp, FakeLLMServer(responder=lambda m: "Answer: x") as llm:
        mp.chdir(root)  # anything a logger writes relative to the working directory stays here
        for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
            mp.setenv(name, str(root / "wandb_home" / name))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
            mp.setenv(name, "unset")  # recorded, so the CLI's defaults are undone afterwards
            mp.delenv(name)  # the CLI must allow the file store itself
        base = _base_config(root, shared_data, tiny_causal_dir, llm.base_url)
        for preset in PRESETS:
            args = ["-c", str(base), "-c", str(REPO / f"configs/logger/{preset}.yaml")]
            build_cli(["fit", *args, "--trainer.default_root_dir", str(root / preset)])
            if preset == "wandb":
                import wandb

                wandb.finish()  # the offline log is complete when the run ends
    return root


def _wandb_records(path: Path):
    """The protobuf records of an offline run's ``.wandb`` file: W&B's LevelDB-style log
    (a 7-byte file header, 32 KiB blocks of chunks, each chunk a CRC, length and type)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        if kind == 0:
            break
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def _read_back(preset: str, folder: Path) -> tuple[set[str], dict[str, int], Path]:
    """(metric names, sample-table rows per tag, the run's folder) from the files alone."""
    if preset in ("tensorboard", "csv"):
        run = folder / "lightning_logs/version_0"
    if preset == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload()
        tags = events.Tags()
        tables = {}
        for tag in TABLES:
            if f"{tag}/text_summary" in tags["tensors"]:
                text = events.Tensors(f"{tag}/text_summary")[-1].tensor_proto.string_val[0]
                tables[tag] = text.decode().count("\n") - 1  # header and rule lines
        return set(tags["scalars"]), tables, run
    if preset == "csv":
        with open(run / "metrics.csv", newline="") as handle:
            names = set(next(csv.reader(handle)))
        tables = {}
        for tag in TABLES:
            path = run / "samples" / f"{table_file_stem(tag)}.csv"
            if path.exists():
                rows = list(csv.reader(path.open(newline="")))
                assert rows[0] == ["step", "question", "rationale", "reward", "gold"]
                tables[tag] = len(rows) - 1
        return names, tables, run
    if preset == "mlflow":
        (run,) = [p.parent for p in (folder / "mlruns").glob("*/*/meta.yaml") if p.parent.name]
        metrics = run / "metrics"
        names = {p.relative_to(metrics).as_posix() for p in metrics.rglob("*") if p.is_file()}
        tables = {}
        for tag in TABLES:
            path = run / "artifacts/samples" / f"{table_file_stem(tag)}.json"
            if path.exists():
                table = json.loads(path.read_text())
                assert table["columns"] == ["step", "question", "rationale", "reward", "gold"]
                tables[tag] = len(table["data"])
        return names, tables, run
    (log,) = (folder / "wandb").glob("offline-run-*/run-*.wandb")
    names, tables = set(), {}
    for record in _wandb_records(log):
        for item in record.history.item if record.HasField("history") else ():
            key = list(item.nested_key) or [item.key]
            if len(key) == 1:
                names.add(key[0])
            elif key[1] == "nrows" and key[0] in TABLES:
                tables[key[0]] = int(item.value_json)
    for tag in tables:  # the table itself is a file of the run
        assert list(log.parent.glob(f"files/media/table/{tag}_*.table.json")), tag
    (checkpoints,) = folder.glob("lm-guided-cot/*/checkpoints")
    return names, tables, checkpoints.parent


@pytest.mark.slow
def test_every_logger_preset_gets_the_same_metrics_and_the_sample_tables(runs):
    seen = {}
    for preset in PRESETS:
        names, tables, run = _read_back(preset, runs / preset)
        seen[preset] = names - OWN_METRICS[preset]
        assert set(tables) == set(TABLES), preset
        assert all(n > 0 for n in tables.values()), (preset, tables)
        # the export sits in the run's own folder, beside its checkpoints
        assert (run / "export/config.json").is_file(), preset
        assert (run / "checkpoints").is_dir(), preset
    missing = SOME_METRICS - seen["tensorboard"]
    assert not missing, sorted(missing)
    for preset in PRESETS[1:]:
        assert seen[preset] == seen["tensorboard"], (
            preset,
            sorted(seen[preset] ^ seen["tensorboard"]),
        )
    # nothing in the working directory: each logger wrote under its run's default_root_dir
    assert {p.name for p in runs.iterdir()} <= {*PRESETS, "ppo.yaml", "llm", "hf", "wandb_home"}


@pytest.mark.slow
def test_the_tables_accumulate_one_file_per_tag_with_a_step_column(runs):
    for path in (
        runs / "csv/lightning_logs/version_0/samples/train_samples.csv",
        *runs.glob("mlflow/mlruns/*/*/artifacts/samples/train_samples.json"),
    ):
        if path.suffix == ".csv":
            steps = [row[0] for row in list(csv.reader(path.open(newline="")))[1:]]
        else:
            steps = [str(row[0]) for row in json.loads(path.read_text())["data"]]
        assert steps == ["1", "1", "2", "2"], path  # 2 rows after each of the 2 optimizer steps


def test_append_csv_quotes_and_keeps_the_header_once(tmp_path):
    path = tmp_path / "samples/t.csv"
    append_csv(path, ["step", "text"], [[0, 'a "quoted", line\nbreak']])
    append_csv(path, ["step", "text"], [[1, "b"]])
    rows = list(csv.reader(path.open(newline="")))
    assert rows == [["step", "text"], ["0", 'a "quoted", line\nbreak'], ["1", "b"]]


@pytest.mark.parametrize(("preset", "package"), [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_a_missing_logger_package_is_one_message(
    preset, package, tmp_path, shared_data, tiny_causal_dir, monkeypatch, capsys
):
    config = _base_config(tmp_path, shared_data, tiny_causal_dir, "http://127.0.0.1:9")
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    with pytest.raises(SystemExit) as done:
        main(["fit", "-c", str(config), "-c", str(REPO / f"configs/logger/{preset}.yaml")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"configs/logger/{preset}.yaml" in err
    assert f"needs the {package} package" in err
    assert "pip install 'lm-guided-cot[loggers]'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "variable",
    ["WANDB_API_KEY", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "DATABRICKS_TOKEN"],
)
def test_the_loggers_credentials_are_masked(variable, monkeypatch):
    monkeypatch.setenv(variable, "v4lue-of-the-credential")
    assert redact("sent v4lue-of-the-credential to the server") == "sent *** to the server"


def test_a_table_goes_to_each_of_several_loggers(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lm_guided_cot.stages.run_logs import log_table

    tb, plain = TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv")
    log_table([tb, plain], 3, "val/samples", ["question", "reward"], [("q | 1?", 0.5)])
    log_table([tb, plain], 3, "val/empty", ["question"], [])  # nothing to show, no file
    tb.experiment.flush()
    events = EventAccumulator(tb.log_dir, size_guidance={"tensors": 0}).Reload()
    (text,) = events.Tensors("val/samples/text_summary")
    assert text.step == 3 and "q \\| 1?" in text.tensor_proto.string_val[0].decode()
    samples = Path(plain.log_dir) / "samples"
    assert [p.name for p in samples.iterdir()] == ["val_samples.csv"]
    rows = list(csv.reader((samples / "val_samples.csv").open(newline="")))
    assert rows == [["step", "question", "reward"], ["3", "q | 1?", "0.5"]]

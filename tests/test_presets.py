"""Every shipped stage and evaluation preset resolves with its benchmark's data config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lm_guided_cot.cli.trainer import build_cli
from lm_guided_cot.evaluation.parser import evaluation_parser

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = {
    "hotpotqa": "hotpotqa",
    "2wikimultihopqa": "2wikimultihopqa",
    "demo": "recipe/2wikimultihopqa",
}
STAGES = sorted(
    (folder, p.name)
    for folder in BENCHMARKS
    for p in (REPO / "configs" / folder).glob("*.yaml")
    if p.name not in ("data.yaml", "evaluate.yaml")
)
STRATEGIES = sorted(p.stem for p in (REPO / "configs/strategy").glob("*.yaml"))
EVALUATIONS = sorted(f for f in BENCHMARKS if (REPO / "configs" / f / "evaluate.yaml").exists())


@pytest.mark.parametrize(("folder", "name"), STAGES)
def test_stage_preset_resolves(folder, name, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    data = f"configs/{BENCHMARKS[folder]}/data.yaml"
    with pytest.raises(SystemExit) as done:
        build_cli(["fit", "-c", data, "-c", f"configs/{folder}/{name}", "--print_config"])
    assert done.value.code in (0, None)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["init_args"]["model"]
    assert config["data"]["class_path"].startswith("lm_guided_cot.datamodules.")
    assert config["trainer"]["default_root_dir"].startswith("runs/")


@pytest.mark.parametrize("folder", EVALUATIONS)
def test_evaluation_preset_resolves(folder, monkeypatch):
    monkeypatch.chdir(REPO)
    parser = evaluation_parser()
    config = parser.parse_args(
        ["-c", f"configs/{BENCHMARKS[folder]}/data.yaml", "-c", f"configs/{folder}/evaluate.yaml"]
    )
    init = parser.instantiate_classes(config)
    assert init.output_dir.startswith("runs/")
    if folder == "demo":  # the quickstart: the committed guide, the recipe's reader, the oracle
        assert [s.model for s in init.small_lms] == ["docs/results/2wikimultihopqa/guides/kd_rl"]
        assert (REPO / init.small_lms[0].model / "adapter_config.json").is_file()
        assert init.llm.server.model == "qwen2.5-coder-0.5b" and init.oracle and not init.cot
        return
    assert init.small_lms and {s.name for s in init.small_lms} >= {
        "LM-guided (KD)",
        "LM-guided (KD+RL)",
    }
    assert any(s.samples > 1 for s in init.small_lms)  # self-consistency
    assert init.judge is not None


def test_every_strategy_preset_is_shipped():
    assert set(STRATEGIES) == {
        "ddp",
        "deepspeed_stage_2",
        "deepspeed_stage_2_offload",
        "deepspeed_stage_3",
        "deepspeed_stage_3_offload",
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("stage", ["distill.yaml", "ppo.yaml"])
def test_strategy_preset_resolves_with_a_stage(strategy, stage, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    args = ["-c", "configs/hotpotqa/data.yaml", "-c", f"configs/hotpotqa/{stage}"]
    args += ["-c", f"configs/strategy/{strategy}.yaml"]
    with pytest.raises(SystemExit) as done:
        build_cli(["fit", *args, "--print_config"])
    assert done.value.code in (0, None)
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert trainer["precision"] == "bf16-mixed"
    if strategy == "ddp":
        assert trainer["strategy"] == "ddp"
    else:
        assert trainer["strategy"]["class_path"].endswith("DeepSpeedStrategy")
        assert trainer["strategy"]["init_args"]["stage"] == int(strategy.split("_")[2])
        offload = trainer["strategy"]["init_args"]["offload_optimizer"]
        assert offload == strategy.endswith("_offload")


RECIPES = sorted(p.name for p in (REPO / "configs/recipe").iterdir() if p.is_dir())


@pytest.mark.parametrize("benchmark", RECIPES)
def test_recipe_configs_resolve_with_the_rows_results_md_names(benchmark, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    folder = f"configs/recipe/{benchmark}"
    for stage in ("distill", "ppo"):
        with pytest.raises(SystemExit) as done:
            build_cli(
                [
                    "fit",
                    "-c",
                    f"{folder}/data.yaml",
                    "-c",
                    f"{folder}/{stage}.yaml",
                    "--print_config",
                ]
            )
        assert done.value.code in (0, None)
        config = yaml.safe_load(capsys.readouterr().out)
        assert config["model"]["init_args"]["export_dir"].startswith(f"runs/recipe/{benchmark}/")
    parser = evaluation_parser()
    init = parser.instantiate_classes(
        parser.parse_args(["-c", f"{folder}/data.yaml", "-c", f"{folder}/evaluate.yaml"])
    )
    assert [s.name for s in init.small_lms] == ["kd", "kd_rl", "self_consistency"]
    assert init.oracle and init.row_names == {
        "standard": "standard",
        "cot": "cot",
        "oracle": "oracle",
    }
    assert init.data.max_eval_examples is None  # every question of the split


@pytest.mark.parametrize(
    ("folder", "name"),
    STAGES + [(f"recipe/{b}", f"{s}.yaml") for b in RECIPES for s in ("distill", "ppo")],
)
def test_stage_preset_instantiates(folder, name, monkeypatch):
    # --print_config does not build the objects: a nested LLMConfig whose defaults were filled in
    # before the YAML's server: once refused every preset that names only a server
    monkeypatch.chdir(REPO)
    data = (
        f"configs/{folder}/data.yaml"
        if folder.startswith("recipe/")
        else f"configs/{BENCHMARKS[folder]}/data.yaml"
    )
    cli = build_cli(["-c", data, "-c", f"configs/{folder}/{name}"], run=False)
    rationales = getattr(cli.datamodule, "rationales", None)
    if rationales is not None and rationales.llm.server is not None:
        assert rationales.llm.model == f"openai/{rationales.llm.server.alias}"


LOGGERS = sorted(p.stem for p in (REPO / "configs/logger").glob("*.yaml"))


def test_every_logger_preset_is_shipped():
    assert set(LOGGERS) == {"tensorboard", "wandb", "mlflow", "csv"}


@pytest.mark.parametrize("logger", LOGGERS)
@pytest.mark.parametrize("stage", ["distill_cpu.yaml", "ppo_cpu.yaml"])
def test_logger_preset_writes_under_the_stages_root(logger, stage, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.setenv(name, "true")  # undone after; the CLI would set them for good
    args = ["-c", "configs/hotpotqa/data.yaml", "-c", f"configs/hotpotqa/{stage}"]
    args += ["-c", f"configs/logger/{logger}.yaml"]
    # MLflow makes its store when built: not in the repository's runs/
    cli = build_cli([*args, "--trainer.default_root_dir", str(tmp_path)], run=False)
    (instance,) = cli.trainer.loggers
    assert type(instance).__name__.lower().startswith(logger[:5])
    assert instance.save_dir == str(tmp_path) + ("/mlruns" if logger == "mlflow" else "")


RECIPE_OVERLAYS = sorted(
    (b, stage, p.name)
    for b in RECIPES
    for stage in ("distill", "ppo")
    for p in (REPO / "configs/recipe" / b).glob(f"{stage}_*.yaml")
)


@pytest.mark.parametrize(("benchmark", "stage", "name"), RECIPE_OVERLAYS)
def test_recipe_stage_overlays_log_and_checkpoint_in_their_own_folder(
    benchmark, stage, name, capsys, monkeypatch
):
    # An overlay that left the stage's folders would overwrite the committed guide's run
    monkeypatch.chdir(REPO)
    folder = f"configs/recipe/{benchmark}"
    configs = []
    for stack in ([f"{stage}.yaml"], [f"{stage}.yaml", name]):
        args = ["fit", "-c", f"{folder}/data.yaml"]
        for config in stack:
            args += ["-c", f"{folder}/{config}"]
        with pytest.raises(SystemExit) as done:
            build_cli([*args, "--print_config"])
        assert done.value.code in (0, None)
        configs.append(yaml.safe_load(capsys.readouterr().out))
    base, overlay = (c["trainer"]["default_root_dir"] for c in configs)
    assert overlay.startswith(f"runs/recipe/{benchmark}/") and overlay != base
    dirs = [c["init_args"]["dirpath"] for c in configs[1]["trainer"]["callbacks"]]
    assert dirs and all(d.startswith(overlay) for d in dirs)


RESULT_CONFIGS = sorted(
    (b, p.name) for b in RECIPES for p in (REPO / "docs/results" / b).glob("*.yaml")
)


@pytest.mark.parametrize(("benchmark", "name"), RESULT_CONFIGS)
def test_result_configs_parse_and_name_committed_files(benchmark, name, monkeypatch):
    # docs/results.md's commands evaluate committed guides and read committed rationales back
    monkeypatch.chdir(REPO)
    configs = [f"configs/recipe/{benchmark}/{c}.yaml" for c in ("data", "evaluate")]
    args = [a for c in [*configs, f"docs/results/{benchmark}/{name}"] for a in ("-c", c)]
    settings = evaluation_parser().parse_args(args)
    paths = [s.model for s in settings.small_lms or [] if s.model.startswith("docs/")]
    paths += [f.path for f in settings.rationale_files or []]
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"docs/results/{benchmark}/{name} names missing files: {missing}"

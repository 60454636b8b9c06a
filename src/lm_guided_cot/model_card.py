"""The model card (``README.md``) every export carries: Hub metadata, then what the model is,
how it was trained and the configuration it was trained with.

``build_card`` is a pure function of plain facts (``card_facts`` gathers them from a module's
or a checkpoint's hyperparameters); the export writes its text beside the weights.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCardData
from huggingface_hub.repocard import metadata_load

from lm_guided_cot.llm.secrets import redact
from lm_guided_cot.markdown import markdown_table
from lm_guided_cot.model_specs import SMOLLM2_ALIASES
from lm_guided_cot.models import MODELS
from lm_guided_cot.paths import expand_path

CARD_FILE = "README.md"
UNKNOWN_LICENSE = "unknown: check the base model's licence"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".arrow", ".gz", ".gguf")
_STAGES = {
    1: ("stage 1: distilled guide", "distillation"),
    2: ("stage 2: PPO guide", "ppo"),
}
_CONFIG_DIRS = {"hotpotqa": "hotpotqa", "2wikimultihopqa": "2wikimultihopqa"}


# ---- facts -----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` as YAML- and ``torch.load(weights_only=True)``-safe data (tensors as numbers)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if hasattr(value, "numel") and hasattr(value, "item"):  # a tensor or numpy scalar
        return plain(value.item()) if value.numel() == 1 else plain(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def describe_object(obj: Any, _depth: int = 0) -> dict[str, Any]:
    """``obj`` as a ``class_path``/``init_args`` config, from the attributes that keep its
    ``__init__`` arguments (a reward, say). A large LM held as a client is named by its config,
    and a role (reader, judge) by its ``config``. Never raises: checkpoints save it."""
    cls = type(obj)
    described: dict[str, Any] = {"class_path": f"{cls.__module__}.{cls.__qualname__}"}
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return described
    if _depth > 8:  # an object graph with a cycle: its class is enough
        return described
    args: dict[str, Any] = {}
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == "llm" and not hasattr(obj, "llm"):
            value = getattr(getattr(obj, "client", None), "config", None)
        else:
            value = getattr(obj, name, None)
        if value is None:
            continue
        args[name] = _described(value, _depth)
    return {**described, "init_args": args}


def _described(value: Any, depth: int) -> Any:
    if isinstance(value, list | tuple):
        return [_described(v, depth) for v in value]
    if isinstance(value, Mapping) or dataclasses.is_dataclass(value):
        return plain(value)
    if isinstance(value, bool | int | float | str | enum.Enum | os.PathLike):
        return plain(value)
    if hasattr(value, "numel") and hasattr(value, "item"):
        return plain(value)
    config = getattr(value, "config", None)
    if dataclasses.is_dataclass(config):
        return plain(config)
    return describe_object(value, depth + 1)


def base_model_facts(spec: str) -> tuple[str | None, str | None]:
    """``(hub id, licence)`` of the model a run started from, each ``None`` when not known.

    A local folder names both in its own card (a stage-1 export does, for stage 2); a registry
    name has its hub repository and licence; another hub id is its own id.
    """
    name = spec.removeprefix("local/")
    folder = Path(os.path.expanduser(name.split("#", 1)[0]))
    if folder.is_dir():
        meta = (metadata_load(folder / CARD_FILE) or {}) if (folder / CARD_FILE).is_file() else {}
        base, licence = meta.get("base_model"), meta.get("license")
        if isinstance(base, list) and len(base) == 1:
            base = base[0]
        return (base if isinstance(base, str) else None), (
            licence if isinstance(licence, str) else None
        )
    entry = MODELS.get("smollm2-135m" if name in SMOLLM2_ALIASES else name)
    entry = entry or next((e for e in MODELS.values() if e.hub_repo == name), None)
    if entry is not None:
        return entry.hub_repo, entry.license.lower()
    if _HUB_ID.match(name) and not name.endswith(_DATA_SUFFIXES):
        return name, None
    return None, None


def hub_datasets(data: Mapping[str, Any] | None) -> list[str]:
    """The splits of a data module's hyperparameters that name hub datasets (not files here)."""
    found: list[str] = []
    for split in ("train", "validation", "test"):
        path = (data or {}).get(split)
        if (
            isinstance(path, str)
            and _HUB_ID.match(path)
            and not path.endswith(_DATA_SUFFIXES)
            and not os.path.exists(expand_path(path))
            and path not in found
        ):
            found.append(path)
    return found


def card_facts(
    module: Mapping[str, Any],
    *,
    stage: int,
    data: Mapping[str, Any] | None = None,
    data_source: str | None = None,
    reward: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    progress: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The facts ``build_card`` takes, from a module's (and data module's) hyperparameters;
    the export adds ``architecture`` (the transformers class) and ``encoder_decoder``.

    Args:
        module: the module's hyperparameters (``model`` is the spec the run started from).
        stage: 1 (distillation) or 2 (PPO).
        data: the data module's hyperparameters.
        data_source: its benchmark (``hotpotqa``, ``2wikimultihopqa``).
        reward: stage 2's reward as a ``class_path``/``init_args`` config.
        metrics: metric name -> value at the export.
        progress: ``global_step``, ``epoch``, ``checkpoint`` and the like.
        name: what users load it by (a hub repository; default: "THIS_FOLDER").
    """
    spec = str(module.get("model") or "")
    base, licence = base_model_facts(spec) if spec else (None, None)
    return {
        "stage": stage,
        "name": name or "THIS_FOLDER",
        "model": spec,
        "base_model": base,
        "license": licence,
        "architecture": "",
        "encoder_decoder": False,
        "module": plain(dict(module)),
        "data": plain(dict(data)) if data is not None else None,
        "data_source": data_source,
        "datasets": hub_datasets(data),
        "reward": plain(reward) if reward is not None else None,
        "metrics": {k: plain(v) for k, v in (metrics or {}).items()},
        "progress": plain(dict(progress or {})),
    }


# ---- the card ----------------------------------------------------------------------------------


def build_card(facts: Mapping[str, Any]) -> str:
    """The card's text: YAML metadata the Hub reads, then the sections (see ``card_facts``)."""
    stage = int(facts["stage"])
    title, stage_tag = _STAGES[stage]
    source = facts.get("data_source")
    tags = ["lm-guided-cot", "chain-of-thought", "rationale-generation", stage_tag]
    tags += [source] if source else []
    pipeline = "text2text-generation" if facts.get("encoder_decoder") else "text-generation"
    metadata = ModelCardData(
        license=facts.get("license") or None,
        base_model=facts.get("base_model") or None,
        library_name="peft" if facts.get("adapter_only") else "transformers",
        pipeline_tag=pipeline,
        tags=tags,
        datasets=list(facts.get("datasets") or []) or None,
    )
    sections = [
        f"# LM-guided CoT guide ({title})",
        _what(facts, stage),
        *([_ADAPTER_NOTE] if facts.get("adapter_only") else []),
        _usage(facts),
        _base(facts),
        _data(facts),
        *([_reward(facts)] if stage == 2 else []),
        _objective(facts, stage),
        _metrics(facts),
        _config(facts),
    ]
    return f"---\n{metadata.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"


_ADAPTER_NOTE = (
    "**This folder holds a LoRA adapter, not a whole model**: peft's `adapter_config.json` and "
    "adapter weights with the tokenizer. Load the base model named below, then "
    "`peft.PeftModel.from_pretrained(base, folder)` (or `.merge_and_unload()` it); "
    "`lmcot export` without `--adapter_only` writes the merged model instead."
)


def _what(facts: Mapping[str, Any], stage: int) -> str:
    how = (
        f"fine-tuned on {_targets(facts)} (stage 1, knowledge distillation)"
        if stage == 1
        else "refined with PPO against a reward from a frozen large LM (stage 2)"
    )
    return (
        "A small LM that writes a rationale for a multi-hop question and its context; a frozen "
        "large LM then answers with that rationale (LM-Guided Chain-of-Thought, Lee et al., "
        "LREC-COLING 2024, [arXiv 2404.03414](https://arxiv.org/abs/2404.03414)), trained with "
        f"the `lm-guided-cot` package. This one was {how}. The folder is the small LM and its "
        "tokenizer (`save_pretrained`), without the PPO value head."
    )


def _targets(facts: Mapping[str, Any]) -> str:
    """What stage 1 learned from: the ``rationales.source`` the data module was given."""
    rationales = (facts.get("data") or {}).get("rationales")
    source = rationales.get("source") if isinstance(rationales, Mapping) else None
    if source == "supporting_facts":
        return "the training questions' gold supporting sentences"
    return "a large LM's rationales"


def _rationales_row(rationales: Mapping[str, Any]) -> tuple[str, str]:
    if rationales.get("source") == "supporting_facts":
        return ("targets", f"gold supporting sentences (`{rationales.get('dir')}`)")
    teacher = (rationales.get("llm") or {}).get("model", "the configured large LM")
    return ("teacher rationales", f"`{rationales.get('dir')}` (teacher: `{teacher}`)")


def _usage(facts: Mapping[str, Any]) -> str:
    name, source = facts["name"], facts.get("data_source") or "hotpotqa"
    configs = f"configs/{_CONFIG_DIRS.get(source, 'hotpotqa')}"
    auto = "AutoModelForSeq2SeqLM" if facts.get("encoder_decoder") else "AutoModelForCausalLM"
    new_text = (
        "output[0]" if facts.get("encoder_decoder") else "output[0, inputs.input_ids.shape[1] :]"
    )
    if facts.get("adapter_only"):
        # transformers cannot resolve a base saved as a project spec ("smollm2", "../kd"):
        # the project's loader can, and merges the adapters (and a stage-1 adapter below them)
        adapter_words = "; the project's loader resolves the base model and merges the adapters"
        imports = "from transformers import AutoTokenizer\n\nfrom lm_guided_cot.model_loading import load_model"
        load = "load_model(guide)"
    else:
        adapter_words = ""
        imports = f"from transformers import {auto}, AutoTokenizer"
        load = f"{auto}.from_pretrained(guide)"

    return f"""## How to use it

As a guide row of the paper's comparison, given the prompt it was trained on:

```bash
lmcot evaluate -c {configs}/data.yaml -c {configs}/evaluate.yaml \\
    --small_lms '[{{"name": "guide", "model": "{name}"}}]'{_prompt_flags(facts)}
```

or with transformers (the prompt as the data module builds it: `data` -> `prompt` in the
configuration below{adapter_words}):

```python
{imports}

guide = "{name}"
tokenizer = AutoTokenizer.from_pretrained(guide, padding_side="left")
model = {load}
inputs = tokenizer(prompt, return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=128)
rationale = tokenizer.decode({new_text}, skip_special_tokens=True)
```"""


# the prompt settings that decide what a guide sees: a guide evaluated on another budget or
# paragraph choice than it learnt on is silently a different guide (the template travels in
# the configuration below). One JSON value, which jsonargparse merges into the config's prompt:
# `--data.init_args.prompt.max_bodies null` fails there (jsonargparse 4.53 reads it as "None")
_PROMPT_FLAGS = ("max_tokens", "context", "paragraph_order", "max_bodies")


def _prompt_flags(facts: Mapping[str, Any]) -> str:
    prompt = (facts.get("data") or {}).get("prompt") or {}
    shown = {key: prompt[key] for key in _PROMPT_FLAGS if key in prompt}
    return f" \\\n    --data.init_args.prompt '{json.dumps(shown)}'" if shown else ""


def _base(facts: Mapping[str, Any]) -> str:
    licence = facts.get("license") or UNKNOWN_LICENSE
    rows = [
        ("started from", f"`{facts.get('model') or 'unknown'}`"),
        ("base model", facts.get("base_model") or "unknown"),
        ("architecture", facts.get("architecture") or "unknown"),
        ("licence of the base model", licence),
    ]
    return "## Base model\n\n" + markdown_table(["", ""], rows)


def _data(facts: Mapping[str, Any]) -> str:
    data = facts.get("data")
    if not data:
        return "## Training data\n\nNot recorded (the export had no data module hyperparameters)."
    rows = [("benchmark", facts.get("data_source") or "unknown")]
    keys = ("train", "validation", "test", "hub_config", "max_examples", "max_eval_examples")
    rows += [(key, f"`{data[key]}`") for key in keys if data.get(key) is not None]
    rationales = data.get("rationales")
    if isinstance(rationales, Mapping):
        rows.append(_rationales_row(rationales))
    return "## Training data\n\n" + redact(markdown_table(["", ""], rows))


def _reward(facts: Mapping[str, Any]) -> str:
    reward = facts.get("reward")
    if not reward:
        return "## Reward\n\nNot recorded."
    lines = _reward_lines(reward, "")
    return "## Reward\n\n" + redact("\n".join(lines))


def _reward_lines(reward: Mapping[str, Any], indent: str) -> list[str]:
    args = reward.get("init_args") or {}
    short = str(reward.get("class_path", "?")).rsplit(".", 1)[-1]
    details = [
        f"{k}: {v}"
        for k, v in args.items()
        if k in ("weights", "metric", "fallback") and not isinstance(v, list | Mapping)
    ]
    if isinstance(args.get("weights"), Mapping):
        details.append(f"weights: {dict(args['weights'])}")
    if isinstance(args.get("llm"), Mapping) and args["llm"].get("model"):
        details.append(f"large LM: {args['llm']['model']}")
    lines = [f"{indent}- `{short}`" + (f" ({', '.join(details)})" if details else "")]
    parts = args.get("rewards") or []
    weights = args.get("weights") if isinstance(args.get("weights"), list) else [1.0] * len(parts)
    for part, weight in zip(parts, weights, strict=False):
        sub = _reward_lines(part, indent + "  ")
        sub[0] = sub[0].replace("- ", f"- {weight} x ", 1)
        lines += sub
    return lines


def _objective(facts: Mapping[str, Any], stage: int) -> str:
    module = facts.get("module") or {}
    common = [(k, module[k]) for k in ("learning_rate", "weight_decay") if k in module]
    if stage == 1:
        rows = common + [(k, module[k]) for k in ("warmup_steps", "scheduler") if k in module]
        return (
            "## Objective\n\nSupervised fine-tuning: token-level cross-entropy on the tokens of "
            f"{_targets(facts)} only (the prompt is context, never a target).\n\n"
            + markdown_table(["setting", "value"], rows)
        )
    ppo = dict(module.get("ppo") or {})
    rollout = ppo.pop("rollout", None)
    kl = (
        f"adaptive KL coefficient from {ppo.get('init_kl_coef')} towards KL {ppo['target_kl']}"
        if ppo.get("target_kl") is not None
        else f"fixed KL coefficient {ppo.get('init_kl_coef')}"
    )
    rows = common + sorted(ppo.items())
    if isinstance(rollout, Mapping):
        rows.append(("rollout", ", ".join(f"{k}={v}" for k, v in rollout.items())))
    in_loss = ppo.get("advantage") in ("grpo", "dr_grpo")
    estimator = ppo.get("kl_estimator") or ("k3" if in_loss else "k1")
    where = "a loss term" if in_loss else "a reward"
    return (
        f"## Objective\n\nPPO with `{ppo.get('advantage', '?')}` advantages, {kl} "
        f"(`{estimator}` per token, as {where}) to the starting model.\n\n"
        + markdown_table(["setting", "value"], rows)
    )


def _metrics(facts: Mapping[str, Any]) -> str:
    metrics, progress = facts.get("metrics") or {}, facts.get("progress") or {}
    rows = [(k, _number(v)) for k, v in sorted(metrics.items())]
    rows += [(k, v) for k, v in progress.items() if v is not None]
    if not rows:
        return "## Metrics at export\n\nNone were logged."
    return "## Metrics at export\n\n" + markdown_table(["metric", "value"], rows)


def _number(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


def _config(facts: Mapping[str, Any]) -> str:
    default = "lm_guided_cot.stages." + (
        "PPOModule" if facts["stage"] == 2 else "DistillationModule"
    )
    config: dict[str, Any] = {"model": _as_config(facts.get("module") or {}, default)}
    if facts.get("reward"):
        config["model"]["init_args"]["reward"] = facts["reward"]
    if facts.get("data"):
        config["data"] = _as_config(facts["data"], None)
    text = yaml.safe_dump(plain(config), sort_keys=False, allow_unicode=True).rstrip()
    # a redacted value starts with '*', which YAML reads as an alias: quote it
    text = re.sub(r"(?m)(:\s+|-\s+)(\*\*\*[^\s'\"]*)$", r"\1'\2'", redact(text))
    return "## Configuration\n\nThe hyperparameters of the run (credentials redacted):\n\n" + (
        f"```yaml\n{text}\n```"
    )


def _as_config(hparams: Mapping[str, Any], default: str | None) -> dict[str, Any]:
    """Hyperparameters as a ``class_path``/``init_args`` block (LightningCLI's own keys out)."""
    args = {k: v for k, v in hparams.items() if not str(k).startswith("_")}
    block: dict[str, Any] = {"init_args": args}
    class_path = hparams.get("_class_path") or default
    return {"class_path": class_path, **block} if class_path else block

"""The ``lmcot fit`` configs tests write as YAML: a PPO run of a tiny model, its HotpotQA data
and the answer-plus-aspects reward. Plain dicts, so that a test can change any part."""

from __future__ import annotations


def hotpotqa_data(data_dir, cache_dir, **init_args) -> dict:
    """The data section: 4 training and 2 validation questions of ``data_dir``'s HotpotQA
    samples, batches of 2, prompts cut at 96 tokens; ``init_args`` add or replace settings."""
    return {
        "class_path": "lm_guided_cot.datamodules.HotpotQADataModule",
        "init_args": {
            "train": f"{data_dir}/hotpotqa/train.jsonl",
            "validation": f"{data_dir}/hotpotqa/validation.jsonl",
            "max_examples": 4,
            "max_eval_examples": 2,
            "batch_size": 2,
            "eval_batch_size": 2,
            "prompt": {"max_tokens": 96},
            "cache_dir": str(cache_dir),
            **init_args,
        },
    }


def answer_and_aspects_reward(llm: dict) -> dict:
    """The reader's answer score plus half the judge's aspect score, both asking ``llm``."""
    return {
        "class_path": "lm_guided_cot.rewards.WeightedSum",
        "init_args": {
            "weights": [1.0, 0.5],
            "rewards": [
                # a copy each: the same dict twice would be written as a YAML anchor and alias
                {
                    "class_path": "lm_guided_cot.rewards.AnswerReward",
                    "init_args": {"llm": dict(llm)},
                },
                {
                    "class_path": "lm_guided_cot.rewards.AspectReward",
                    "init_args": {"llm": dict(llm)},
                },
            ],
        },
    }


def ppo_fit_config(
    model,
    reward: dict,
    data: dict,
    *,
    trainer: dict | None = None,
    ppo: dict | None = None,
    seed: int | None = None,
    **init_args,
) -> dict:
    """A PPOModule fit of ``model`` on CPU with no sanity check and no model summary: 2
    rationales of at most 4 tokens per question, evaluation answers of 4 tokens. ``trainer``
    and ``ppo`` add or replace those sections' settings, ``init_args`` the module's;
    ``seed`` sets ``seed_everything``."""
    config = {
        "trainer": {
            "accelerator": "cpu",
            "num_sanity_val_steps": 0,
            "enable_model_summary": False,
            **(trainer or {}),
        },
        "model": {
            "class_path": "lm_guided_cot.stages.PPOModule",
            "init_args": {
                "model": str(model),
                "ppo": {"rollout": {"max_new_tokens": 4}, "samples_per_question": 2, **(ppo or {})},
                "eval_generation": {"max_new_tokens": 4},
                "reward": reward,
                **init_args,
            },
        },
        "data": data,
    }
    if seed is not None:
        config["seed_everything"] = seed
    return config

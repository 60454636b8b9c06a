"""``lmcot rationales``: stage 1's teacher rationales for a config."""

from __future__ import annotations

import json


def rationales(argv: list[str]) -> None:
    """Build stage 1's teacher rationales for a config (lmcot rationales -c CONFIG)."""
    from lm_guided_cot.cli.trainer import build_cli

    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: lmcot rationales -c CONFIG [more -c / --key value as for lmcot fit]\n\n"
            "Asks the teacher (data.init_args.rationales) about the train and validation questions,\n"
            "writes <dir>/<split>.jsonl and <split>.summary.json, and prints the summaries.\n"
            "Replies are cached: a rerun after an interruption only sends what had no answer."
        )
        return
    cli = build_cli(argv, run=False)
    summaries = cli.datamodule.build_rationales()
    print(json.dumps(summaries, indent=2))

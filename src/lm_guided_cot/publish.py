"""Pushing an export folder to the Hugging Face Hub (``lmcot export ... --push_to_hub REPO``).

The token comes from the environment only: ``HF_TOKEN``, or the cache ``hf auth login``
writes, both read by huggingface_hub itself; it is never printed. A push that fails (no
token, a refused token, no network) is one ``RunError`` naming the repository and saying
that the export folder is intact.
"""

from __future__ import annotations

import os
from pathlib import Path

from lm_guided_cot.errors import RunError
from lm_guided_cot.llm.secrets import redact, register_secret_variable
from lm_guided_cot.output_folders import EXPORT_MARKER

TOKEN_VARIABLE = "HF_TOKEN"

_STATUS_WORDS = {
    401: "the Hub refused the token (401 Unauthorized): check HF_TOKEN or `hf auth login`",
    403: "the token may not write there (403 Forbidden): use a token with write access",
    404: "no such repository, or the token cannot see it (404 Not Found)",
}


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create ``repo_id`` if needed (``private`` when it does not exist yet), upload ``folder``
    to ``revision`` (a branch, made from main if missing; default main) and return the
    commit's URL."""
    register_secret_variable(TOKEN_VARIABLE)
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    intact = f"the export is intact at {folder}"
    if constants.is_offline_mode():
        raise RunError(
            f"cannot push to the Hub repository {repo_id}: HF_HUB_OFFLINE (or "
            f"TRANSFORMERS_OFFLINE) is set, which keeps huggingface_hub off the network; unset "
            f"it for the push; {intact}"
        )
    if not get_token():
        raise RunError(
            f"cannot push to the Hub repository {repo_id}: no Hugging Face token (set "
            f"{TOKEN_VARIABLE}, or log in with `hf auth login`); {intact}"
        )
    # the transport's own error class, whichever HTTP library this huggingface_hub uses
    transport = tuple(c for c in HfHubHTTPError.__mro__[1:] if c.__name__ == "HTTPError")
    api = HfApi()
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            ignore_patterns=[EXPORT_MARKER],  # the local folder's marker, not the model's
            commit_message=commit_message or f"lmcot export: {folder.name}",
        )
    except (OSError, ValueError, RuntimeError, *transport) as err:
        raise RunError(
            f"could not push {folder} to the Hub repository {repo_id} at "
            f"{constants.ENDPOINT}: {_why(err)}; {intact}"
        ) from None
    return str(info.commit_url)


def _why(err: BaseException) -> str:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    if status in _STATUS_WORDS:
        return _STATUS_WORDS[status]
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    if status is None and not isinstance(err, ValueError):  # no answer at all: the network
        return f"the Hub cannot be reached ({type(err).__name__}: {redact(first)})"
    return redact(first)

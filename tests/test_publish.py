"""`lmcot export ... --push_to_hub REPO` against a local stand-in of the Hub's upload API."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard, constants

from lm_guided_cot.errors import RunError
from lm_guided_cot.output_folders import EXPORT_MARKER
from lm_guided_cot.stages.export import export_checkpoint
from lm_guided_cot.testing.fake_hub import FakeHubServer
from tests.helpers import write_policy_checkpoint

TOKEN = "hf_StandInToken0123456789abcdef"


@pytest.fixture
def checkpoint(tmp_path, tiny_causal_dir):
    return write_policy_checkpoint(tiny_causal_dir, tmp_path / "last.ckpt")


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """huggingface_hub pointed at ``hub_env(server)``, with no login cache to fall back on."""
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # LFS files take the LFS path
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests' conftest sets it
    monkeypatch.setenv("HF_TOKEN", TOKEN)

    def point_at(endpoint: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)

    return point_at


def _files(folder):
    assert (folder / EXPORT_MARKER).is_file()  # the local marker, which is not pushed
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != EXPORT_MARKER
    }


def test_push_uploads_every_file_of_the_export_and_the_token_only_as_a_header(
    checkpoint, tmp_path, hub_env, capsys
):
    out = tmp_path / "guide"
    with FakeHubServer(TOKEN) as hub:
        hub_env(hub.base_url)
        export_checkpoint(
            str(checkpoint),
            str(out),
            push_to_hub="me/guide",
            private=True,
            revision="v1",
            commit_message="first guide",
        )
    local = _files(out)
    assert {"README.md", "config.json", "model.safetensors"} <= set(local)
    assert hub.repos["me/guide"] == local  # every file, byte for byte
    assert hub.private["me/guide"] is True
    assert hub.commits == [
        {
            "repo": "me/guide",
            "revision": "v1",
            "summary": "first guide",
            "description": "",
            "paths": sorted(local),
        }
    ]
    assert any("lfs-upload" in r for r in hub.requests)  # the safetensors went the LFS way
    card = ModelCard.load(out / "README.md")
    assert 'guide = "me/guide"' in card.text and "| global_step | 3 |" in card.text
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}
    assert not any(TOKEN.encode() in body for body in hub.bodies)
    assert not any(TOKEN in request for request in hub.requests)
    printed = capsys.readouterr()
    assert "pushed" in printed.out and TOKEN not in printed.out + printed.err


def test_a_refused_token_is_one_error_naming_the_repo_and_the_folder_stays(
    checkpoint, tmp_path, hub_env
):
    out = tmp_path / "guide"
    with FakeHubServer(TOKEN, refuse=True) as hub:
        hub_env(hub.base_url)
        with pytest.raises(RunError) as caught:
            export_checkpoint(str(checkpoint), str(out), push_to_hub="me/guide")
    message = str(caught.value)
    assert "me/guide" in message and "401 Unauthorized" in message and "HF_TOKEN" in message
    assert f"the export is intact at {out}" in message and TOKEN not in message
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert not hub.repos


def test_no_token_fails_before_any_request(checkpoint, tmp_path, hub_env, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with FakeHubServer(TOKEN) as hub:
        hub_env(hub.base_url)
        with pytest.raises(RunError, match=r"me/guide: no Hugging Face token.*hf auth login"):
            export_checkpoint(str(checkpoint), str(tmp_path / "guide"), push_to_hub="me/guide")
    assert hub.requests == [] and (tmp_path / "guide" / "README.md").is_file()


def test_offline_mode_is_named(checkpoint, tmp_path, hub_env, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RunError, match=r"me/guide: HF_HUB_OFFLINE .* is set"):
        export_checkpoint(str(checkpoint), str(tmp_path / "guide"), push_to_hub="me/guide")


def test_an_unreachable_hub_is_named(checkpoint, tmp_path, hub_env):
    hub_env("http://127.0.0.1:9")  # the discard port: nothing listens there
    with pytest.raises(RunError) as caught:
        export_checkpoint(str(checkpoint), str(tmp_path / "guide"), push_to_hub="me/guide")
    assert "me/guide at http://127.0.0.1:9: the Hub cannot be reached" in str(caught.value)


def test_the_command_takes_the_dashed_spelling_too(checkpoint, tmp_path):
    out = tmp_path / "guide"
    with FakeHubServer(TOKEN) as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.base_url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_TOKEN": TOKEN,
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
        }
        args = ["export", str(checkpoint), str(out), "--push-to-hub", "me/guide"]
        done = subprocess.run(
            [sys.executable, "-m", "lm_guided_cot.cli", *args, "--private", "true"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert hub.repos["me/guide"] == _files(out) and hub.private["me/guide"]
    assert f"exported to {out}" in done.stdout and "/me/guide/commit/" in done.stdout
    assert TOKEN not in done.stdout + done.stderr

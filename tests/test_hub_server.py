"""The test Hub is faithful: huggingface_hub's own client downloads from it without complaint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub import Hub


@pytest.fixture
def repo_files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "llama"}',
        "empty.txt": b"",
        "nested/deeper/notes.md": b"# notes\n" * 100,
        "model.safetensors": os.urandom(300_000),
        "weights/part-2.bin": os.urandom(200_000),
    }


def test_snapshot_download_accepts_the_test_hub(hub: Hub, hf_home: Path, repo_files, monkeypatch):
    from huggingface_hub import snapshot_download

    commit = hub.create_repo("org/model", repo_files)
    path = snapshot_download("org/model", endpoint=hub.url, cache_dir=hf_home / "hub")
    assert Path(path).name == commit
    for name, content in repo_files.items():
        assert (Path(path) / name).read_bytes() == content
    # LFS bodies came from the CDN origin, without the token ever being needed there
    assert {s.path.split("/")[-1] for s in hub.requests(origin="cdn", method="GET")} >= {
        __import__("hashlib").sha256(repo_files["model.safetensors"]).hexdigest()
    }
    # the tree was listed over several pages
    assert len(hub.requests(contains="/tree/")) > 1

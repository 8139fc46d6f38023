"""The test Hub is faithful: huggingface_hub's own client downloads from it without complaint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub import Fault, Hub


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


@pytest.mark.parametrize(("kind", "after"), [("reset", 40_000), ("chunked", 0), ("stall", 50_000)])
def test_the_log_counts_every_body_byte_sent_faulted_bodies_included(hub: Hub, kind: str, after: int):
    import http.client

    content = os.urandom(300_000)
    hub.create_repo("org/model", {"model.safetensors": content})
    hub.faults.append(Fault(kind, origin="cdn", after=after, seconds=0.05))
    connection = http.client.HTTPConnection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]), timeout=60)
    connection.request("GET", "/org/model/resolve/main/model.safetensors")
    redirect = connection.getresponse()
    redirect.read()
    location = redirect.getheader("Location")
    cdn = http.client.HTTPConnection("127.0.0.1", int(hub.cdn_url.rsplit(":", 1)[1]), timeout=60)
    cdn.request("GET", location.removeprefix(hub.cdn_url))
    received = b""
    response = cdn.getresponse()
    try:
        while chunk := response.read1(1 << 16):
            received += chunk
    except (ConnectionError, http.client.IncompleteRead):
        pass  # the reset
    hub.wait_idle()

    [served] = hub.requests(origin="cdn")
    assert served.fault == kind
    assert received == content[: len(received)]
    assert served.sent == len(received) == (after if kind == "reset" else len(content))

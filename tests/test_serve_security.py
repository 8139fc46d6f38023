"""`hfget serve` keeps to its cache and its clients' tokens to itself: traversal refused, tokens enforced."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hub import Hub
from serving import ServeProcess, start_serve
from waiting import wait_until

SECRET = b"the secret outside the cache\n"


@pytest.fixture
def served(hub: Hub, tmp_path: Path):
    """A repo fetched through serve into its cache, then a secret file beside the cache and serve offline."""
    started: list[ServeProcess] = []

    def start(*args: str) -> ServeProcess:
        process = start_serve(tmp_path / "serve-cache", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def _raw(port: int, method: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request with the target exactly as written (no client-side normalisation of `..` or `%2e`)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _warm(hub: Hub, tmp_path: Path) -> str:
    from huggingface_hub import snapshot_download

    hub.create_repo("org/model", {"config.json": b'{"a": 1}', "sub/notes.txt": b"notes"})
    warm = start_serve(tmp_path / "serve-cache", "--endpoint", hub.url)
    snapshot_download("org/model", endpoint=warm.url, cache_dir=tmp_path / "client")
    warm.stop()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return str(tmp_path / "secret.txt")


ATTEMPTS = [
    "/org/model/resolve/main/../../../secret.txt",
    "/org/model/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/org/model/resolve/main/%252e%252e/%252e%252e/%252e%252e/secret.txt",
    "/org/model/resolve/main/sub%2F..%2F..%2F..%2F..%2Fsecret.txt",
    "/org/model/resolve/..%2F..%2F..%2F/secret.txt",
    "/org/model/resolve/main//SECRET_ABSOLUTE",
    "/org/model/resolve/main/%2FSECRET_ABSOLUTE",
    "/org/model/resolve/main/config.json%00",
    "/org/..%2F..%2F/resolve/main/secret.txt",
    "/org%2Fmodel/resolve/main/config.json",
    "/../../secret.txt/resolve/main/x",
    "/api/models/org/model/tree/main/..%2F..%2F..",
    "/api/models/..%2F../tree/main",
    "/api/models/org/model/revision/..%2F..%2F..%2Fsecret.txt",
]


def test_path_traversal_is_refused(hub: Hub, served, tmp_path: Path):
    secret = _warm(hub, tmp_path)
    server = served("--offline")
    seen: list[int] = []
    for attempt in ATTEMPTS:
        status, body = _raw(server.port, "GET", attempt.replace("SECRET_ABSOLUTE", secret.lstrip("/")))
        assert status in (400, 404), attempt
        seen.append(status)
        assert SECRET not in body, attempt
    status, body = _raw(server.port, "GET", "/org/model/resolve/main/config.json")
    assert (status, body) == (200, b'{"a": 1}')  # the server is fine: only the attempts were refused
    assert 400 in seen  # the malformed ones are refused as such, not only as missing


def test_a_symlink_leading_out_of_the_cache_is_not_followed(hub: Hub, served, tmp_path: Path):
    secret = _warm(hub, tmp_path)
    storage = tmp_path / "serve-cache" / "models--org--model"
    for blob in (storage / "blobs").iterdir():
        if blob.stat().st_size == len(b"notes"):
            blob.unlink()
            Path(secret).write_bytes(b"SECRE")  # the same size as the file it replaces
            blob.symlink_to(secret)
    server = served("--offline")
    status, body = _raw(server.port, "GET", "/org/model/resolve/main/sub/notes.txt")
    assert status == 404 and b"SECRE" not in body


def test_client_tokens_never_reach_upstream(hub: Hub, served, tmp_path: Path):
    from huggingface_hub import snapshot_download

    hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": os.urandom(1000)})
    server = served("--endpoint", hub.url)
    snapshot_download("org/model", endpoint=server.url, cache_dir=tmp_path / "client", token="hf_client_secret")
    assert hub.log and not any(s.authorized for s in hub.log)
    server.stop()
    assert not any("hf_client_secret" in line for line in server.lines)


def test_token_file_is_enforced(hub: Hub, served, tmp_path: Path):
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    hub.create_repo("org/model", {"config.json": b"{}"})
    tokens = tmp_path / "tokens"
    tokens.write_text("# the team\nhf_team_one\n\nhf_team_two\n")
    server = served("--endpoint", hub.url, "--token-file", str(tokens))
    target = "/api/models/org/model/revision/main"
    assert _raw(server.port, "GET", target)[0] == 401
    assert _raw(server.port, "GET", target, {"Authorization": "Bearer hf_wrong"})[0] == 401
    assert _raw(server.port, "GET", target, {"Authorization": "hf_team_two"})[0] == 401
    assert _raw(server.port, "GET", target, {"Authorization": "Bearer hf_team_two"})[0] == 200
    with pytest.raises(HfHubHTTPError):
        snapshot_download("org/model", endpoint=server.url, cache_dir=tmp_path / "c1", token=False)
    path = snapshot_download("org/model", endpoint=server.url, cache_dir=tmp_path / "c2", token="hf_team_one")
    assert (Path(path) / "config.json").read_bytes() == b"{}"
    assert not any(s.authorized for s in hub.log)
    code, summary = server.stop()
    assert not any("hf_team" in line for line in server.lines)
    assert code == 0 and "refused" in summary


def test_plain_hfget_does_not_import_the_server(run_hfget):
    import subprocess
    import sys

    check = ("import sys, hfget.cli._app; "
             "print(any(m.split('.')[0] in ('starlette', 'uvicorn') or m.startswith('hfget.serve') "
             "for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
    assert "serve" in run_hfget("--help").stdout


def test_another_host_is_printed(tmp_path: Path):
    server = start_serve(tmp_path / "cache", "--host", "0.0.0.0", "--offline")
    try:
        wait_until(lambda: any("not only on this machine" in line for line in server.lines),
                   "the warning that another host is reachable from other machines")
    finally:
        server.stop()

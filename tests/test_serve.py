"""`hfget serve` as a Hub: the official client, several at once, Range, HEAD headers, upstream gone, streaming."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfget import _resume
from hfget._models import RemoteFile
from hub import Fault, Hub
from serving import ServeProcess, start_serve
from waiting import finish, wait_until

FILES = {
    "config.json": b'{"model_type": "llama"}',
    "empty.txt": b"",
    "nested/deeper/notes.md": b"# notes\n" * 100,
    "model.safetensors": os.urandom(300_000),
    "weights/big.bin": os.urandom(9 << 20),  # over 8 MiB: the engine fetches it in ranges
}


@pytest.fixture
def serve(hub: Hub, tmp_path: Path):
    started: list[ServeProcess] = []

    def start(*args: str, cache: Path | None = None, env: dict[str, str] | None = None) -> ServeProcess:
        process = start_serve(cache or tmp_path / "serve-cache", "--endpoint", hub.url, *args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def _request(url: str, method: str, path: str, headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def _check_snapshot(path: str | Path, commit: str, files: dict[str, bytes]) -> None:
    snapshot = Path(path)
    assert snapshot.name == commit
    for name, content in files.items():
        assert (snapshot / name).read_bytes() == content, name
        if content:
            link = snapshot / name
            assert link.is_symlink() and os.readlink(link).startswith("../")
            assert link.resolve().parent.name == "blobs"
    assert (snapshot.parent.parent / "refs" / "main").read_text() == commit


def test_snapshot_download_and_hf_hub_download_through_serve(hub: Hub, serve, tmp_path: Path):
    from huggingface_hub import hf_hub_download, snapshot_download

    commit = hub.create_repo("org/model", FILES)
    server = serve()
    path = snapshot_download("org/model", endpoint=server.url, cache_dir=tmp_path / "client")
    _check_snapshot(path, commit, FILES)
    # serve's own cache holds the repo in the layout huggingface_hub reads offline (the empty file, which clients
    # create without a GET, is fetched when they HEAD it)
    empty = tmp_path / "serve-cache" / "models--org--model" / "snapshots" / commit / "empty.txt"
    wait_until(empty.exists, "serve to cache the empty file")
    offline = snapshot_download("org/model", cache_dir=tmp_path / "serve-cache", local_files_only=True)
    _check_snapshot(offline, commit, FILES)
    single = hf_hub_download("org/model", "nested/deeper/notes.md", endpoint=server.url,
                             cache_dir=tmp_path / "client2")
    assert Path(single).read_bytes() == FILES["nested/deeper/notes.md"]
    code, summary = server.stop()  # the log is complete once it stopped
    assert server.log("resolve/main/nested/deeper/notes.md") and server.log(" hit ")
    assert code == 0 and summary.startswith("hfget serve: stopped.") and "4 misses" in summary


def test_six_hf_endpoint_clients_at_once_on_a_cold_cache_fetch_each_file_about_once(hub: Hub, serve, tmp_path: Path):
    commit = hub.create_repo("org/model", FILES)
    hub.rate = 8e6  # slow enough that the clients overlap
    server = serve()
    script = ("import sys; from huggingface_hub import snapshot_download; "
              "print(snapshot_download('org/model', cache_dir=sys.argv[1]))")
    clients = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"client-{i}")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "HF_ENDPOINT": server.url}) for i in range(6)]
    for client in clients:
        out, err = finish(client, "a snapshot_download through serve", timeout=300)
        assert client.returncode == 0, err
        _check_snapshot(out.strip().splitlines()[-1], commit, FILES)
    hub.wait_idle()
    repo_bytes = sum(len(c) for c in FILES.values())
    assert sum(s.sent for s in hub.file_gets()) <= 1.15 * repo_bytes
    # whether the clients overlapped depends on the machine; the next test makes them overlap for sure


def _held_upstream(hub: Hub, serve) -> tuple[bytes, ServeProcess]:
    """A 2 MB file whose upstream body stops after 500,000 bytes until the test releases it, and serve."""
    content = os.urandom(2_000_000)
    hub.create_repo("org/model", {"model.safetensors": content})
    hub.faults.append(Fault("stall", origin="cdn", after=500_000, seconds=120))
    return content, serve()


def _first_bytes(server: ServeProcess, count: int) -> tuple[http.client.HTTPResponse, bytes]:
    """GET the file from serve and read until `count` bytes came; the response stays open for the rest."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    connection.request("GET", "/org/model/resolve/main/model.safetensors")
    response = connection.getresponse()
    received = b""
    while len(received) < count:
        received += response.read1(1 << 16)
    return response, received


def test_clients_of_one_miss_share_one_fetch_and_each_streams_from_it(hub: Hub, serve):
    content, server = _held_upstream(hub, serve)
    responses = [_first_bytes(server, 500_000) for _ in range(3)]  # each while the fetch is held at 500,000 bytes
    assert hub.stalling == 1
    hub.release_stalls()
    for response, received in responses:
        assert received + response.read() == content
    hub.wait_idle()
    assert len(hub.requests(origin="cdn", method="GET")) == 1
    assert sum(s.sent for s in hub.file_gets()) == len(content)
    wait_until(lambda: len(server.log(" miss ")) == 3, "the three clients' lines in serve's log")


def test_head_answers_match_the_test_hub(hub: Hub, serve):
    commit = hub.create_repo("org/model", FILES)
    server = serve()
    for name in ("config.json", "model.safetensors", "empty.txt"):
        path = f"/org/model/resolve/main/{name}"
        ours, _ = _request(server.url, "HEAD", path)
        theirs, _ = _request(hub.url, "HEAD", path)
        assert ours.status == 200
        for header in ("X-Repo-Commit", "ETag", "X-Linked-Etag", "X-Linked-Size", "Accept-Ranges"):
            assert ours.getheader(header) == theirs.getheader(header), (name, header)
        assert ours.getheader("X-Repo-Commit") == commit
        assert int(ours.getheader("Content-Length")) == len(FILES[name])
        assert ours.getheader("Cache-Control") == "no-cache"
    pinned, _ = _request(server.url, "HEAD", f"/org/model/resolve/{commit}/config.json")
    assert "immutable" in pinned.getheader("Cache-Control")


@pytest.mark.parametrize("warm", [False, True])
def test_range_requests(hub: Hub, serve, warm: bool):
    hub.create_repo("org/model", FILES)
    server = serve()
    content = FILES["model.safetensors"]
    path = "/org/model/resolve/main/model.safetensors"
    if warm:
        _request(server.url, "GET", path)
    for asked, (start, end) in {"bytes=10-19": (10, 20), "bytes=299990-": (299990, 300000),
                                "bytes=-5": (299995, 300000), "bytes=0-999999": (0, 300000)}.items():
        response, body = _request(server.url, "GET", path, {"Range": asked})
        assert response.status == 206, asked
        assert body == content[start:end]
        assert response.getheader("Content-Range") == f"bytes {start}-{end - 1}/{len(content)}"
    for asked in ("bytes=300000-", "bytes=5-2", "lines=1-2"):
        response, _ = _request(server.url, "GET", path, {"Range": asked})
        assert response.status == 416, asked
        assert response.getheader("Content-Range") == f"bytes */{len(content)}"


def test_errors_carry_the_hub_codes(hub: Hub, serve):
    commit = hub.create_repo("org/model", FILES)
    server = serve()
    missing, _ = _request(server.url, "GET", "/org/model/resolve/main/nope.txt")
    assert (missing.status, missing.getheader("X-Error-Code")) == (404, "EntryNotFound")
    assert missing.getheader("X-Repo-Commit") == commit
    revision, _ = _request(server.url, "GET", "/api/models/org/model/revision/nope")
    assert (revision.status, revision.getheader("X-Error-Code")) == (404, "RevisionNotFound")
    # the test Hub says 401 to an anonymous client for a repo it does not have; serve says the Hub's 404
    repo, _ = _request(server.url, "HEAD", "/org/absent/resolve/main/config.json")
    assert repo.status == 404


def test_upstream_gone_cached_repos_served_the_rest_not_found(hub: Hub, serve, tmp_path: Path):
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    commit = hub.create_repo("org/model", FILES)
    hub.create_repo("org/other", {"config.json": b"{}"})
    hub.create_repo("org/half", {"a.txt": b"a", "b.txt": b"b"})
    first = serve()
    snapshot_download("org/model", endpoint=first.url, cache_dir=tmp_path / "warm")
    hf_hub_download("org/half", "a.txt", endpoint=first.url, cache_dir=tmp_path / "warm")
    first.stop()
    hub.stop()
    for args in ((), ("--offline",)):
        server = serve(*args)
        path = snapshot_download("org/model", endpoint=server.url, cache_dir=tmp_path / f"cold{len(args)}")
        _check_snapshot(path, commit, FILES)
        with pytest.raises(RepositoryNotFoundError):
            snapshot_download("org/other", endpoint=server.url, cache_dir=tmp_path / "cold-other")
        with pytest.raises(EntryNotFoundError):
            hf_hub_download("org/half", "b.txt", endpoint=server.url, cache_dir=tmp_path / "cold-half")
        server.stop()


def test_a_miss_streams_while_upstream_is_still_sending(hub: Hub, serve):
    content, server = _held_upstream(hub, serve)
    response, received = _first_bytes(server, 500_000)
    assert hub.stalling == 1  # the client has every byte upstream sent so far while upstream still sends
    assert received == content[:500_000]
    hub.release_stalls()
    received += response.read()
    assert received == content
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(content).hexdigest()


def test_hfget_itself_is_a_client_of_serve(hub: Hub, serve, run_hfget, tmp_path: Path):
    commit = hub.create_repo("org/model", FILES)
    server = serve()
    result = run_hfget("org/model", "--endpoint", server.url, "--cache-dir", str(tmp_path / "client"), "-q")
    assert result.returncode == 0, result.stderr
    _check_snapshot(result.stdout.strip().splitlines()[-1], commit, FILES)
    wait_until(lambda: server.log(" 206 "), "a ranged GET of the large file in serve's log")


def test_transformers_autoconfig_through_serve(hub: Hub, serve, tmp_path: Path):
    hub.create_repo("org/tiny", {"config.json": b'{"model_type": "gpt2", "n_layer": 3, "n_embd": 48}'})
    server = serve()
    script = "from transformers import AutoConfig; print(AutoConfig.from_pretrained('org/tiny').n_layer)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_CACHE": str(tmp_path / "client")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "3"


def test_tree_and_paths_info_through_hf_api(hub: Hub, serve):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    hub.create_repo("org/model", FILES)
    server = serve()
    api = HfApi(endpoint=server.url, token=False)
    top = {(type(e).__name__, e.path) for e in api.list_repo_tree("org/model")}
    assert top == {("RepoFile", "config.json"), ("RepoFile", "empty.txt"), ("RepoFile", "model.safetensors"),
                   ("RepoFolder", "nested"), ("RepoFolder", "weights")}
    deep = [e.path for e in api.list_repo_tree("org/model", path_in_repo="nested", recursive=True)]
    assert deep == ["nested/deeper", "nested/deeper/notes.md"]
    info = api.get_paths_info("org/model", ["model.safetensors", "weights", "absent.txt"])
    [file] = [e for e in info if isinstance(e, RepoFile)]
    assert file.lfs is not None and file.lfs.sha256 == hashlib.sha256(FILES["model.safetensors"]).hexdigest()
    assert [e.path for e in info if isinstance(e, RepoFolder)] == ["weights"]


def test_a_long_tree_is_paginated_with_links_to_serve_itself(hub: Hub, serve):
    from huggingface_hub import HfApi

    files = {f"data/{i:04d}.txt": str(i).encode() for i in range(1005)}
    hub.create_repo("org/many", files)
    server = serve()
    entries = list(HfApi(endpoint=server.url, token=False).list_repo_tree("org/many", recursive=True))
    assert sorted(e.path for e in entries) == sorted([*files, "data"])
    server.stop()
    pages = server.log("/api/models/org/many/tree/")
    assert len(pages) == 2 and all(" 200 " in line for line in pages)


def test_hf_download_cli_through_serve(hub: Hub, serve, tmp_path: Path):
    commit = hub.create_repo("org/model", FILES)
    server = serve()
    hf = Path(sys.executable).parent / "hf"
    result = subprocess.run([str(hf), "download", "org/model", "--quiet", "--cache-dir", str(tmp_path / "client")],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                            env={**os.environ, "HF_ENDPOINT": server.url})
    assert result.returncode == 0, result.stderr
    _check_snapshot(result.stdout.strip().splitlines()[-1], commit, FILES)


def test_datasets_load_dataset_through_serve(hub: Hub, serve, tmp_path: Path):
    rows = b"".join(b'{"text": "row %d", "label": %d}\n' % (i, i % 2) for i in range(5))
    hub.create_repo("org/data", {"data/train.jsonl": rows}, repo_type="dataset")
    server = serve()
    script = ("from datasets import load_dataset; d = load_dataset('org/data', split='train'); "
              "print(len(d), d[4]['text'])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "client-home"),
                                 "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "5 row 4"


def test_hfget_resumes_against_serve_after_kill_9(hub: Hub, serve, run_hfget, tmp_path: Path):
    big = os.urandom(24 << 20)
    commit = hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 6 << 20  # upstream slow enough that the client is killed mid-way
    server = serve()
    cache = tmp_path / "client"
    blobs = cache / "models--org--model" / "blobs"
    client = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", server.url, "--cache-dir",
                               str(cache), "-c", "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listed = RemoteFile("model.safetensors", len(big), "0" * 40, lfs_sha256=hashlib.sha256(big).hexdigest())

    def written() -> int:
        partials = list(blobs.glob("*.incomplete")) if blobs.exists() else []
        return sum(b - a for p in partials for a, b in _resume.load(p, listed))

    wait_until(lambda: written() >= 4 << 20, "4 MiB written by the client")
    client.kill()
    client.wait()
    assert written() < len(big)  # killed mid-way
    hub.rate = None
    published = tmp_path / "serve-cache" / "models--org--model" / "blobs" / listed.etag
    wait_until(published.exists, "serve to finish its own fetch (the client's going does not stop it)")
    before = len(server.lines)

    result = run_hfget("org/model", "--endpoint", server.url, "--cache-dir", str(cache), "-q")

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big
    assert Path(result.stdout.strip()).name == commit
    server.stop()
    # the killed client's own requests end in the log too (as serve notices them gone): the second run's are the
    # ones served from serve's cache, complete by then
    resumed = [line for line in server.lines[before:] if "GET " in line and "/resolve/" in line and " hit " in line]
    sent = sum(int(line.split(" B ")[0].rsplit(" ", 1)[1]) for line in resumed)
    assert 0 < sent <= len(big) - (4 << 20)  # asked only for what the killed run had not written
    hub.wait_idle()
    assert sum(s.sent for s in hub.file_gets()) <= 1.15 * len(big)  # serve fetched it upstream about once


def test_serve_among_mirrors_gives_its_commit_date_so_a_stale_mirror_is_not_taken_for_newer(
        hub: Hub, serve, tmp_path: Path, run_hfget):
    """The team's set-up, `--mirror <serve> --mirror <public mirror>`, with the public mirror a commit behind:
    serve answers the revision lookup with the date upstream gave the commit, so hfget fetches the newest commit
    from serve and names the other mirror as stale (without a date, serve's answer looked older than any)."""
    hub.create_repo("org/model", {"config.json": b"old"})
    stale = Hub(tmp_path / "stale").start()
    try:
        stale.mirror_of(hub, "org/model")
        newest = hub.commit("org/model", {"config.json": b"new"})
        server = serve()
        brief, body = _request(server.url, "GET", "/api/models/org/model/revision/main?expand=sha&expand=lastModified")
        assert brief.status == 200 and set(json.loads(body)) == {"id", "sha", "lastModified"}
        result = run_hfget("org/model", "-m", server.url, "-m", stale.url, "--cache-dir", str(tmp_path / "c"))
        assert result.returncode == 0, result.stderr
        snapshot = Path(result.stdout.strip().splitlines()[-1])
        assert snapshot.name == newest and (snapshot / "config.json").read_bytes() == b"new"
        assert stale.file_gets() == []
    finally:
        stale.stop()


def test_a_commit_that_the_first_upstream_mirror_lacks_is_listed_from_the_next(hub: Hub, tmp_path: Path):
    """serve's first upstream mirror is a commit behind: a client asking for the newer commit (which it learnt
    elsewhere) gets its tree and its files from the next mirror, not a 404; the fetches of its files go to that
    mirror first (the one behind is not asked for each file, to answer 404 each time)."""
    hub.create_repo("org/model", {"config.json": b"{}"})
    behind = Hub(tmp_path / "behind").start()
    try:
        behind.mirror_of(hub, "org/model")
        commit = hub.commit("org/model", {"model.safetensors": FILES["model.safetensors"]})
        server = start_serve(tmp_path / "serve-cache", "-m", behind.url, "-m", hub.url)
        try:
            response, body = _request(server.url, "GET", f"/api/models/org/model/tree/{commit}?recursive=true")
            assert response.status == 200, body
            assert "model.safetensors" in {e["path"] for e in json.loads(body)}
            for path, content in (("model.safetensors", FILES["model.safetensors"]), ("config.json", b"{}")):
                response, body = _request(server.url, "GET", f"/org/model/resolve/{commit}/{path}")
                assert response.status == 200 and body == content, path
        finally:
            server.stop()
        behind.wait_idle()
        assert behind.file_gets() == []
    finally:
        behind.stop()


def test_a_fetch_that_fails_mid_stream_cuts_the_response_with_one_log_line(hub: Hub, serve):
    """Upstream keeps sending wrong bytes: the client's response is cut before its last byte (so it retries
    rather than keep a bad file), and the operator's log says so in one line, without a traceback."""
    hub.create_repo("org/model", FILES)
    hub.corrupt["model.safetensors"] = 10
    server = serve()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("GET", "/org/model/resolve/main/model.safetensors")
    response = connection.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    connection.close()
    server.stop()
    log = "\n".join(server.lines)
    assert "Traceback" not in log, log
    [cut] = [line for line in log.splitlines() if "model.safetensors" in line and "cut" in line]
    assert "hfget serve" in cut

"""What gets downloaded: FILES, --include/--exclude, revisions, repo types, and where the token goes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import hfget
from hub import Hub

FILES = {
    "config.json": b"{}",
    "README.md": b"readme",
    "model.safetensors": b"S" * 5000,
    "pytorch_model.bin": b"B" * 3000,
    "onnx/model.onnx": b"O" * 2000,
    "onnx/config.json": b'{"onnx": true}',
    "tokenizer/vocab.txt": b"a\nb\n",
}


def _got(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def repo(hub: Hub) -> str:
    return hub.create_repo("org/model", FILES)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-I", "*.json"], {"config.json", "onnx/config.json"}),
        (["-I", "onnx/"], {"onnx/model.onnx", "onnx/config.json"}),
        (["-I", "*.json", "-I", "*.txt"], {"config.json", "onnx/config.json", "tokenizer/vocab.txt"}),
        (["-X", "*.bin", "-X", "onnx/*"], {"config.json", "README.md", "model.safetensors", "tokenizer/vocab.txt"}),
        (["-I", "*.json", "-X", "onnx/"], {"config.json"}),
        (["config.json", "tokenizer/"], {"config.json", "tokenizer/vocab.txt"}),
        (["onnx/model.onnx", "-X", "*.json"], {"onnx/model.onnx"}),
    ],
)
def test_files_and_patterns_select_what_huggingface_hub_would(hub: Hub, repo: str, run_hfget, args, expected):
    result = run_hfget("org/model", "--endpoint", hub.url, "-q", *args)
    assert result.returncode == 0, result.stderr
    assert _got(Path(result.stdout.strip())) == expected
    fetched = {s.path.split(f"/resolve/{repo}/")[-1] for s in hub.requests(method="GET", contains="/resolve/")}
    assert fetched == expected  # and nothing else was asked for


def test_patterns_that_match_nothing_are_an_error_not_an_empty_success(hub: Hub, repo: str, run_hfget):
    result = run_hfget("org/model", "--endpoint", hub.url, "-I", "*.gguf")
    assert result.returncode == hfget.ExitCode.NOT_FOUND
    assert "include/exclude patterns" in result.stderr


def test_revision_by_tag_by_commit_and_pull_request(hub: Hub, hf_home: Path, run_hfget):
    first = hub.create_repo("org/model", {"v.txt": b"one", "old.txt": b"old"})
    hub.tag("org/model", "v1.0", first)
    second = hub.commit("org/model", {"v.txt": b"two", "old.txt": None})
    pr = hub.open_pr("org/model", {"v.txt": b"pull request"})
    pr_commit = hub.repos[("model", "org/model")].refs[pr]

    for revision, commit, content in [("v1.0", first, b"one"), (first, first, b"one"), ("main", second, b"two"),
                                      (pr, pr_commit, b"pull request")]:
        result = run_hfget("org/model", "--endpoint", hub.url, "-q", "-r", revision)
        assert result.returncode == 0, (revision, result.stderr)
        snapshot = Path(result.stdout.strip())
        assert snapshot.name == commit
        assert (snapshot / "v.txt").read_bytes() == content
    refs = hf_home / "hub" / "models--org--model" / "refs"
    assert (refs / "v1.0").read_text() == first
    assert (refs / "refs" / "pr" / "1").read_text() == pr_commit
    assert not (refs / first).exists()  # a commit is not a ref


@pytest.mark.parametrize("repo_type", ["dataset", "space"])
def test_datasets_and_spaces(hub: Hub, hf_home: Path, run_hfget, repo_type: str):
    commit = hub.create_repo("org/thing", {"data/train.parquet": b"PAR1" * 1000, "app.py": b"print()"},
                             repo_type=repo_type)
    by_prefix = run_hfget(f"{repo_type}s/org/thing", "--endpoint", hub.url, "-q")
    by_flag = run_hfget("org/thing", "--repo-type", repo_type, "--endpoint", hub.url, "-q")
    expected = hf_home / "hub" / f"{repo_type}s--org--thing" / "snapshots" / commit
    for result in (by_prefix, by_flag):
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip()) == expected
    assert (expected / "data" / "train.parquet").read_bytes() == b"PAR1" * 1000


def test_a_model_repo_is_not_found_as_a_dataset(hub: Hub, run_hfget):
    hub.create_repo("org/model", {"a": b"a"})
    result = run_hfget("datasets/org/model", "--endpoint", hub.url)
    assert result.returncode == hfget.ExitCode.NOT_FOUND


def test_the_token_reaches_the_endpoint_and_never_the_cdn(hub: Hub, run_hfget):
    hub.create_repo("org/private", {"config.json": b"{}", "model.safetensors": b"W" * 10_000}, private=True)
    hub.grant("org/private", "hf_privatetoken")

    result = run_hfget("org/private", "--endpoint", hub.url, "--token", "hf_privatetoken")

    assert result.returncode == 0, result.stderr
    assert "hf_privatetoken" not in result.stderr + result.stdout
    hub_requests = hub.requests(origin="hub")
    cdn_requests = hub.requests(origin="cdn")
    assert hub_requests and all(s.authorized for s in hub_requests)
    assert cdn_requests and not any(s.authorized for s in cdn_requests)


def test_the_token_comes_from_hf_token_or_the_saved_login(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/private", {"config.json": b"{}"}, private=True)
    hub.grant("org/private", "hf_fromenv")
    hub.grant("org/private", "hf_fromfile")
    assert run_hfget("org/private", "--endpoint", hub.url, env={"HF_TOKEN": "hf_fromenv"}).returncode == 0
    (hf_home / "token").write_text("hf_fromfile")
    assert run_hfget("org/private", "--endpoint", hub.url, "--local-dir", str(hf_home / "x")).returncode == 0
    assert not any("hf_from" in p.read_text(errors="ignore") for p in (hf_home / "hub").rglob("*") if p.is_file())


def test_python_api_downloads_and_reports_events(hub: Hub, tmp_path: Path, hf_home: Path):
    commit = hub.create_repo("org/model", FILES)
    events: list[hfget.Event] = []
    received: list[int] = []

    class Recorder:
        def handle(self, event):
            events.append(event)

        def advance(self, path, nbytes):
            received.append(nbytes)

    path = hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path / "cache", include=["*.json"],
                          sink=Recorder())

    assert path == tmp_path / "cache" / "models--org--model" / "snapshots" / commit
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["RevisionResolved", "DownloadPlanned"]
    assert kinds[-1] == "DownloadFinished"
    assert kinds.count("FileDone") == 2
    assert sum(received) == sum(len(FILES[p]) for p in ("config.json", "onnx/config.json"))


def test_a_run_of_small_files_starts_no_more_worker_threads_than_jobs(hub: Hub, tmp_path: Path, hf_home: Path):
    # An idle worker wakes for every file finished: 32 threads for -j 2 cost a run more CPU, for nothing.
    files = {f"configs/{i}.json": f'{{"n": {i}}}'.encode() for i in range(12)}
    hub.create_repo("org/model", files)
    workers: set[str] = set()

    class Threads:  # the workers report each block of bytes they receive themselves
        def handle(self, event):
            pass

        def advance(self, path, nbytes):
            workers.add(threading.current_thread().name)

    path = hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path / "cache", jobs=2, sink=Threads())

    assert {name: (path / name).read_bytes() for name in files} == files
    assert workers <= {"hfget-worker-0", "hfget-worker-1"} and workers

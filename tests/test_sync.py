"""`hfget sync`: a manifest fetched and locked; --frozen keeps the locked commit; --offline checks the cache."""

from __future__ import annotations

import os
from pathlib import Path

import hfget
from hub import Hub

MANIFEST = """
[[repo]]
id = "org/model"
include = ["*.json"]

[[repo]]
id = "datasets/org/data"
local_dir = "data"
"""


def _setup(hub: Hub, tmp_path: Path) -> Path:
    hub.create_repo("org/model", {"config.json": b'{"v": 1}', "model.safetensors": b"W" * 100})
    hub.create_repo("org/data", {"train.jsonl": b'{"x": 1}\n'}, repo_type="dataset")
    manifest = tmp_path / "hfget.toml"
    manifest.write_text(MANIFEST)
    return manifest


def test_sync_fetches_every_repo_and_writes_the_lock(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    manifest = _setup(hub, tmp_path)
    result = run_hfget("sync", str(manifest), "--endpoint", hub.url)
    assert result.returncode == 0, result.stderr
    lock = (tmp_path / "hfget.lock").read_text()
    assert hub.repos[("model", "org/model")].refs["main"] in lock
    assert hub.repos[("dataset", "org/data")].refs["main"] in lock
    assert (tmp_path / "data" / "train.jsonl").read_bytes() == b'{"x": 1}\n'
    snapshot = hf_home / "hub" / "models--org--model" / "snapshots" / hub.repos[("model", "org/model")].refs["main"]
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json"]


def test_frozen_fetches_the_locked_commit_after_the_branch_moved(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    manifest = _setup(hub, tmp_path)
    assert run_hfget("sync", str(manifest), "--endpoint", hub.url).returncode == 0
    locked = hub.repos[("model", "org/model")].refs["main"]
    hub.commit("org/model", {"config.json": b'{"v": 2}'})
    cache = hf_home / "other-cache"
    hub.clear_log()

    result = run_hfget("sync", str(manifest), "--endpoint", hub.url, "--frozen", "--cache-dir", str(cache))

    assert result.returncode == 0, result.stderr
    snapshot = cache / "models--org--model" / "snapshots" / locked
    assert (snapshot / "config.json").read_bytes() == b'{"v": 1}'
    assert not hub.requests(contains="/revision/main")  # the locked commit needed no lookup


def test_offline_says_whether_the_cache_holds_everything(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    manifest = _setup(hub, tmp_path)
    assert run_hfget("sync", str(manifest), "--endpoint", hub.url).returncode == 0
    hub.clear_log()

    complete = run_hfget("sync", str(manifest), "--offline")
    assert complete.returncode == 0, complete.stdout + complete.stderr

    (tmp_path / "data" / "train.jsonl").unlink()
    incomplete = run_hfget("sync", str(manifest), "--offline")
    assert incomplete.returncode == hfget.ExitCode.FAILED
    assert "missing datasets/org/data: train.jsonl" in incomplete.stderr
    assert hub.log == []  # no request at all


def test_sync_fetches_the_repos_at_the_same_time(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    for name in ("a", "b"):
        hub.create_repo(f"org/{name}", {"model.safetensors": os.urandom(3 << 20)})
    hub.rate = 2 << 20  # 1.5 s per file: long enough for the two to overlap
    manifest = tmp_path / "hfget.toml"
    manifest.write_text('[[repo]]\nid = "org/a"\n\n[[repo]]\nid = "org/b"\n')

    result = run_hfget("sync", str(manifest), "--endpoint", hub.url)

    assert result.returncode == 0, result.stderr
    spans: dict[str, tuple[float, float]] = {}  # each repo's blob: first request in, last body out
    for served in hub.requests(origin="cdn", method="GET"):
        began, ended = spans.get(served.path, (served.at, served.done))
        spans[served.path] = (min(began, served.at), max(ended, served.done))
    (a_began, a_ended), (b_began, b_ended) = spans.values()
    assert a_began < b_ended and b_began < a_ended  # each was asked for before the other was done: together


def test_sync_output_names_each_repo_and_keeps_quiet_and_failures_apart(hub: Hub, hf_home: Path, tmp_path: Path,
                                                                         run_hfget):
    manifest = _setup(hub, tmp_path)
    loud = run_hfget("sync", str(manifest), "--endpoint", hub.url)
    assert loud.returncode == 0, loud.stderr
    fetch_lines = [line for line in loud.stderr.splitlines() if "fetching" in line]
    assert fetch_lines and all(line.startswith(("org/model: ", "datasets/org/data: ")) for line in fetch_lines)
    quiet = run_hfget("sync", str(manifest), "--endpoint", hub.url, "-q")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""

    empty_cache = {"HF_HOME": str(tmp_path / "empty-home")}
    (tmp_path / "data" / "train.jsonl").unlink()
    offline = run_hfget("sync", str(manifest), "--offline", env=empty_cache)
    assert offline.returncode == hfget.ExitCode.FAILED
    assert offline.stdout == ""  # nothing that looks like success
    assert "missing org/model" in offline.stderr and "missing datasets/org/data: train.jsonl" in offline.stderr
    assert "not on disk" in offline.stderr.strip().splitlines()[-1]


def test_an_unknown_key_in_the_manifest_is_an_error(tmp_path: Path, run_hfget):
    manifest = tmp_path / "hfget.toml"
    manifest.write_text('[defaults]\nmirrors = ["a.example"]\n\n[[repo]]\nid = "org/model"\n')
    result = run_hfget("sync", str(manifest))
    assert result.returncode == 2 and "mirrors" in result.stderr and "Did you mean 'mirror'" in result.stderr


def test_a_string_where_the_manifest_expects_a_list_is_one_name(hub: Hub, hf_home: Path, tmp_path: Path, run_hfget):
    hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": b"W" * 100})
    manifest = tmp_path / "hfget.toml"
    manifest.write_text(f'[defaults]\nmirror = "{hub.url}"\n\n[[repo]]\nid = "org/model"\ninclude = "*.json"\n')
    result = run_hfget("sync", str(manifest))
    assert result.returncode == 0, result.stderr
    snapshot = Path(result.stdout.split(" -> ")[-1].strip())
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json"]
    (tmp_path / "hfget.lock").write_text('{"version": 1, "repos": [{"commit": "x"}]}')
    broken = run_hfget("sync", str(manifest), "--frozen")
    assert broken.returncode == 2 and "Traceback" not in broken.stderr

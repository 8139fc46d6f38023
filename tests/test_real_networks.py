"""Real networks (issue 10): mirrors that cap connections per client."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hub import Hub

MiB = 1 << 20


def test_a_mirror_that_caps_connections_is_used_within_its_cap(hub: Hub, run_hfget):
    files = {"a.safetensors": os.urandom(24 * MiB), "b.safetensors": os.urandom(24 * MiB), "config.json": b"{}"}
    hub.create_repo("org/model", files)
    hub.max_connections = 2
    hub.rate = 8 * MiB  # bodies last long enough for connections to overlap

    # 8 connections a file: the bound on refusals below counts one burst of them before the cap is learned
    result = run_hfget("org/model", "--endpoint", hub.url, "-q", "--json", "-c", "8")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = events[-1]
    for name, content in files.items():
        assert (Path(summary["path"]) / name).read_bytes() == content
    limits = [e for e in events if e["event"] == "retry" and "limits connections" in e["reason"]]
    assert limits and all(e["reason"].endswith("to 1") or e["reason"].endswith("to 2") for e in limits)
    assert len({e["reason"] for e in limits}) == len(limits)  # said once per host
    assert not [e for e in events if e["event"] == "retry" and "attempts" in e["reason"]]
    assert hub.refused_for_cap <= 8  # learned from the first refusals, not hammered


def test_a_host_that_refuses_even_one_connection_still_fails_the_usual_way(hub: Hub, run_hfget):
    hub.create_repo("org/model", {"config.json": b"{}"})
    hub.max_connections = 0
    result = run_hfget("org/model", "--endpoint", hub.url, "--retries", "1")
    assert result.returncode != 0
    assert "limits connections" not in result.stderr


@pytest.fixture
def second_hub(tmp_path: Path):
    server = Hub(tmp_path / "second-hub", page_size=3).start()
    yield server
    server.stop()


def test_a_stale_mirror_is_named_and_not_used(hub: Hub, second_hub: Hub, run_hfget):
    files = {"config.json": b'{"v": 1}', "model.safetensors": os.urandom(3 * MiB)}
    old = hub.create_repo("org/model", files)
    assert second_hub.create_repo("org/model", files) == old  # the same history on both
    new = second_hub.commit("org/model", {"config.json": b'{"v": 2}'})

    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url, "--json")

    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    stale = [e for e in events if e["event"] == "mirror_stale"]
    assert [(e["endpoint"], e["commit"], e["newest_endpoint"], e["newest_commit"]) for e in stale] == [
        (hub.url, old, second_hub.url, new)]
    assert events[-1]["commit"] == new
    assert (Path(events[-1]["path"]) / "config.json").read_bytes() == b'{"v": 2}'
    assert hub.file_gets() == [] and [s.path for s in hub.log] == ["/api/models/org/model/revision/main"]


def test_the_stale_mirror_line_says_who_is_behind_whom(hub: Hub, second_hub: Hub, run_hfget):
    old = hub.create_repo("org/model", {"a.txt": b"a"})
    second_hub.create_repo("org/model", {"a.txt": b"a"})
    new = second_hub.commit("org/model", {"a.txt": b"b"})
    result = run_hfget("org/model", "--mirror", hub.url, "--mirror", second_hub.url)
    assert result.returncode == 0, result.stderr
    assert f"{hub.url} serves main = {old[:12]}" in result.stderr
    assert f"behind {second_hub.url}'s {new[:12]}" in result.stderr and "not used for this run" in result.stderr


def test_a_pinned_commit_asks_no_mirror_for_its_revision(hub: Hub, second_hub: Hub, run_hfget):
    commit = hub.create_repo("org/model", {"a.txt": b"a"})
    second_hub.create_repo("org/model", {"a.txt": b"a"})
    result = run_hfget("org/model", "-r", commit, "--mirror", hub.url, "--mirror", second_hub.url)
    assert result.returncode == 0, result.stderr
    assert not hub.requests(contains="/revision/") and not second_hub.requests(contains="/revision/")


def test_hfget_mirrors_orders_them_best_first(hub: Hub, second_hub: Hub, run_hfget):
    files = {"model.safetensors": os.urandom(6 * MiB)}
    old = hub.create_repo("org/model", files)
    second_hub.create_repo("org/model", files)
    new = second_hub.commit("org/model", {"config.json": b"{}"})
    dead = "http://127.0.0.1:9"

    result = run_hfget("mirrors", "org/model", "-m", dead, "-m", hub.url, "-m", second_hub.url, "--json")

    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["endpoint"] for r in reports] == [second_hub.url, hub.url, dead]
    assert [(r["answers"], r["commit"], r["newest"]) for r in reports] == [
        (True, new, True), (True, old, False), (False, None, False)]
    assert all(r["throughput"] and r["latency"] for r in reports[:2])
    sample = [s for s in second_hub.requests(origin="cdn", method="GET")]
    assert len(sample) == 1 and sample[0].range == "bytes=0-4194303"  # a sample, not the whole file
    table = run_hfget("mirrors", "-m", dead, "-m", hub.url)
    assert table.returncode == 0 and table.stdout.splitlines()[1].startswith(hub.url)

"""Surviving the network: retries, 429s, stalls, chunked bodies, mirrors that fail or vanish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import hfget
from hub import Fault, Hub
from waiting import finish, wait_until

MiB = 1 << 20


def _snapshot(result) -> Path:
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("size", [300_000, 20 * MiB])
def test_a_reset_mid_body_resumes_from_the_bytes_on_disk(hub: Hub, run_hfget, size: int):
    content = os.urandom(size)
    hub.create_repo("org/model", {"model.safetensors": content})
    hub.faults.append(Fault("reset", origin="cdn", after=size // 3, times=2))

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert "retrying model.safetensors" in result.stderr
    hub.wait_idle()
    gets = hub.requests(origin="cdn", method="GET")
    assert [s.sent for s in gets if s.fault == "reset"] == [size // 3] * 2  # both resets fired mid-body
    ranges = [s.range for s in gets]
    assert any(r and not r.startswith("bytes=0-") for r in ranges)  # continued, not restarted


def test_503s_on_file_and_metadata_requests_are_retried(hub: Hub, run_hfget):
    files = {"config.json": b"{}", "model.safetensors": os.urandom(100_000)}
    hub.create_repo("org/model", files)
    hub.faults += [Fault("status", match="/revision/", times=2), Fault("status", match="/tree/", times=1),
                   Fault("status", match="/resolve/", status=502, times=3)]

    result = run_hfget("org/model", "--endpoint", hub.url)

    snapshot = _snapshot(result)
    assert {p: (snapshot / p).read_bytes() for p in files} == files
    assert "retrying the revision lookup" in result.stderr
    assert [s.status for s in hub.requests(contains="/revision/")] == [503, 503, 200]
    assert [s.status for s in hub.requests(contains="/tree/")] == [503, 200]
    resolves = hub.requests(method="GET", contains="/resolve/")
    failed = [s for s in resolves if s.status == 502]
    assert len(failed) == 3 and all(s.fault == "status" for s in failed)  # the file requests did get 502s
    for bad in failed:  # and each was asked again, and answered
        assert any(s.path == bad.path and s.at > bad.at and s.status in (200, 302) for s in resolves), bad.path
    assert {s.path.rsplit("/", 1)[-1] for s in resolves if s.status in (200, 302)} == set(files)


def test_429_retry_after_is_honoured(hub: Hub, run_hfget):
    hub.create_repo("org/model", {"config.json": b"{}"})
    hub.faults.append(Fault("status", match="/resolve/", status=429, headers={"Retry-After": "2"}))

    result = run_hfget("org/model", "--endpoint", hub.url)

    _snapshot(result)
    first, second = hub.requests(contains="/resolve/")
    assert first.status == 429 and second.status == 200
    assert second.at - first.done >= 1.9  # asked again only after the 2 s it was told to wait
    assert "rate limited" in result.stderr


def test_429_ratelimit_header_on_the_revision_lookup_is_honoured(hub: Hub, run_hfget):
    hub.create_repo("org/model", {"config.json": b"{}"})
    headers = {"RateLimit": '"api";r=0;t=1', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'}
    hub.faults.append(Fault("status", match="/revision/", status=429, headers=headers))

    result = run_hfget("org/model", "--endpoint", hub.url)

    _snapshot(result)
    first, second = hub.requests(contains="/revision/")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.done >= 1.9  # asked again only after t + 1 seconds


def test_a_storm_of_429s_narrows_the_run_and_everything_still_arrives(hub: Hub, run_hfget):
    files = {f"data/{i:03d}.json": os.urandom(2000) for i in range(120)}
    hub.create_repo("org/model", files)
    hub.faults.append(Fault("status", match="/resolve/", status=429, headers={"Retry-After": "0"}, times=40))

    result = run_hfget("org/model", "--endpoint", hub.url, "-j", "16")

    snapshot = _snapshot(result)
    assert all((snapshot / p).read_bytes() == c for p, c in files.items())
    assert "requests at once now" in result.stderr
    assert sum(s.status == 429 for s in hub.requests(contains="/resolve/")) == 40


def test_a_stalled_connection_is_dropped_and_retried(hub: Hub, run_hfget):
    content = os.urandom(2 * MiB)
    hub.create_repo("org/model", {"model.safetensors": content})
    hub.faults.append(Fault("stall", origin="cdn", after=MiB, seconds=600))  # until the hub stops

    result = run_hfget("org/model", "--endpoint", hub.url, "--stall-timeout", "1")

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    assert "stalled" in result.stderr
    assert hub.stalling == 1  # the file was finished while the stalled body was still held: not waited out
    resumed = hub.requests(origin="cdn", method="GET")  # the stalled body is not logged until it ends
    assert any(s.status == 206 and (s.range or "").startswith(f"bytes={MiB}-") for s in resumed)  # MiB kept


@pytest.mark.parametrize("size", [50_000, 20 * MiB])
def test_a_chunked_body_without_content_length_is_fetched_and_verified(hub: Hub, run_hfget, size: int):
    content = os.urandom(size)
    hub.create_repo("org/model", {"model.safetensors": content})
    hub.faults.append(Fault("chunked", origin="cdn", times=10))

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert (_snapshot(result) / "model.safetensors").read_bytes() == content
    hub.wait_idle()
    gets = hub.requests(origin="cdn", method="GET")
    assert gets and all(s.fault == "chunked" and s.status == 200 for s in gets)  # the fault did fire
    assert any(s.sent == size for s in gets)  # a whole chunked body went out


def _twin_mirrors(tmp_path: Path, files: dict) -> tuple[Hub, Hub]:
    first, second = Hub(tmp_path / "a").start(), Hub(tmp_path / "b").start()
    for mirror in (first, second):
        mirror.create_repo("org/model", files)
    return first, second


def test_a_mirror_that_is_down_fails_over_to_the_next(tmp_path: Path, hf_home: Path, run_hfget):
    files = {"config.json": b"{}", "model.safetensors": os.urandom(300_000)}
    down, up = _twin_mirrors(tmp_path, files)
    down.stop()
    try:
        result = run_hfget("org/model", "--mirror", down.url, "--mirror", up.url)
        snapshot = _snapshot(result)
        assert (snapshot / "model.safetensors").read_bytes() == files["model.safetensors"]
        assert f"switching from {down.url} to {up.url}" in result.stderr
    finally:
        up.stop()


def test_a_mirror_failing_mid_file_hands_the_rest_to_the_next_keeping_the_bytes(
    tmp_path: Path, hf_home: Path, run_hfget
):
    content = os.urandom(3 * MiB)
    first, second = _twin_mirrors(tmp_path, {"model.safetensors": content})
    # the first mirror sends 1 MiB, then it and its CDN answer only 503
    first.faults += [Fault("reset", origin="cdn", after=MiB), Fault("status", match="/resolve/", times=100, skip=1),
                     Fault("status", origin="cdn", times=100, skip=1)]
    try:
        result = run_hfget("org/model", "--mirror", first.url, "--mirror", second.url)
        assert (_snapshot(result) / "model.safetensors").read_bytes() == content
        assert f"switching from {first.url} to {second.url}" in result.stderr
        taken_over = [s.range for s in second.requests(origin="cdn", method="GET")]
        assert len(taken_over) == 1 and taken_over[0].startswith("bytes=") and taken_over[0] != "bytes=0-"
        assert int(taken_over[0][6:-1]) > 0  # what the first mirror delivered before the reset was kept
    finally:
        first.stop()
        second.stop()


def test_a_mirror_missing_a_listed_file_fails_over_or_fails_that_file(tmp_path: Path, hf_home: Path, run_hfget):
    files = {"config.json": b"{}", "extra.txt": b"extra"}
    stale, good = _twin_mirrors(tmp_path, files)
    stale.faults.append(Fault("status", match="/resolve/", status=404, times=100))
    stale.faults[-1].match = "extra.txt"
    try:
        alone = run_hfget("org/model", "--mirror", stale.url)
        assert alone.returncode == hfget.ExitCode.FAILED
        assert "extra.txt" in alone.stderr.strip().splitlines()[-1] and "404" in alone.stderr

        both = run_hfget("org/model", "--mirror", stale.url, "--mirror", good.url)
        assert (_snapshot(both) / "extra.txt").read_bytes() == b"extra"
        assert "switching from" in both.stderr
    finally:
        stale.stop()
        good.stop()


def test_ctrl_c_during_a_stalled_transfer_stops_and_parks_the_partial(hub: Hub, hf_home: Path):
    hub.create_repo("org/model", {"model.safetensors": os.urandom(2 * MiB)})
    hub.faults.append(Fault("stall", origin="cdn", after=MiB, seconds=600))  # until the hub stops
    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    blobs = hf_home / "hub" / "models--org--model" / "blobs"
    try:
        wait_until(lambda: hub.stalling == 1 and sum(p.stat().st_size for p in blobs.glob("*.incomplete")) >= MiB,
                   "the first MiB on disk and the body stalled")
    except AssertionError:
        proc.kill()
        raise

    proc.send_signal(signal.SIGINT)
    _, stderr = finish(proc, "hfget after SIGINT, inside a stall that only ends when the hub stops")

    assert proc.returncode == hfget.ExitCode.INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert hub.stalling == 1  # it stopped while the server was still holding the body
    assert [p.stat().st_size for p in blobs.glob("*.hfget.incomplete")] == [MiB]  # parked, ready to resume

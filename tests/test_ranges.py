"""Large files over several connections: pieces in file order, dynamic splitting, resume of every range,
expired CDN links, --limit-rate, and a partial file that never outgrows the file."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hfget
from hfget import _resume
from hfget._memory import is_glibc
from hfget._models import RemoteFile
from hfget._pieces import merge
from hub import Hub
from waiting import wait_until

MiB = 1 << 20


def _ranges(served) -> list[tuple[int, int]]:
    """The half-open byte ranges a list of served requests asked for."""
    out = []
    for s in served:
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", s.range or "")
        assert match, s.range
        out.append((int(match.group(1)), int(match.group(2)) + 1 if match.group(2) else None))
    return out


def _blob_dir(hf_home: Path) -> Path:
    return hf_home / "hub" / "models--org--model" / "blobs"


def test_a_large_file_is_fetched_over_several_split_ranges_from_one_redirect(hub: Hub, run_hfget):
    big = os.urandom(40 * MiB)
    hub.create_repo("org/model", {"model.safetensors": big, "config.json": b"{}"})
    hub.rate = 8 * MiB  # per connection: more connections finish sooner

    result = run_hfget("org/model", "--endpoint", hub.url, "-q", "-c", "6")

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big
    gets = hub.requests(origin="cdn", method="GET")
    assert len(gets) >= 2 and len({g.path for g in gets}) == 1
    assert len(hub.requests(method="GET", contains="/resolve/")) == 2  # one redirect for the big file, reused
    ranges = _ranges(gets)
    assert min(start for start, _ in ranges) == 0
    starts = sorted(start for start, _ in ranges)
    assert len(set(starts)) == len(starts)  # every connection began at a new place: the ranges were split
    assert 2 <= hub.max_concurrent_cdn_gets <= 6  # several at once, never more than -c


def test_a_large_file_comes_in_bounded_pieces_in_file_order_each_read_to_its_end(hub: Hub, run_hfget):
    big = os.urandom(96 * MiB)
    hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 16 * MiB  # per connection, so the file takes several, and pieces of 32 MiB (2 s) at most

    result = run_hfget("org/model", "--endpoint", hub.url, "-q", "-c", "4")

    assert result.returncode == 0, result.stderr
    gets = hub.requests(origin="cdn", method="GET")
    asked = _ranges(gets)
    assert all(end is not None for _, end in asked)
    assert [g.sent for g in gets] == [end - start for start, end in asked]  # no request cut short...
    assert sum(g.sent for g in gets) == len(big)  # ...and none overlapping: every byte was sent once
    assert len(gets) > 4 and max(end - start for start, end in asked) < len(big) // 2
    by_connection: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for get, (start, _) in zip(gets, asked, strict=True):
        by_connection.setdefault(get.peer, []).append((get.at, start))
    assert any(len(pieces) > 1 for pieces in by_connection.values())  # the next piece on the same connection
    for pieces in by_connection.values():
        starts = [start for _, start in sorted(pieces)]
        assert starts == sorted(starts)  # in file order


def test_a_killed_multi_range_download_resumes_every_range_without_fetching_a_byte_twice(
    hub: Hub, hf_home: Path, run_hfget
):
    big = os.urandom(48 * MiB)
    commit = hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 4 * MiB
    etag = hashlib.sha256(big).hexdigest()
    listed = RemoteFile("model.safetensors", len(big), "0" * 40, lfs_sha256=etag)
    blobs = _blob_dir(hf_home)

    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url, "-c", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        wait_until(lambda: _done(_one(blobs, etag, ".incomplete"), listed) >= 16 * MiB, "16 MiB recorded as done")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial, state = _one(blobs, etag, ".incomplete"), _one(blobs, etag, ".ranges")
    assert partial is not None and state is not None
    done_at_kill = _resume.load(partial, listed)
    done_bytes = sum(b - a for a, b in done_at_kill)
    assert hub.max_concurrent_cdn_gets >= 2 and len(done_at_kill) >= 2  # several ranges at once
    assert 16 * MiB <= done_bytes < len(big)
    assert partial.stat().st_size == len(big)  # written in place, never beyond the file's size

    hub.rate = None
    hub.wait_idle()
    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url, "-c", "4")

    assert result.returncode == 0, result.stderr
    snapshot = hf_home / "hub" / "models--org--model" / "snapshots" / commit
    assert (snapshot / "model.safetensors").read_bytes() == big
    asked = _ranges(hub.requests(origin="cdn", method="GET"))
    for start, end in asked:
        for a, b in done_at_kill:
            assert end <= a or start >= b, f"asked again for {start}-{end}, done at kill: {a}-{b}"
    assert sum(end - start for start, end in merge(asked)) == len(big) - done_bytes
    assert not partial.exists() and not state.exists()


def _one(folder: Path, etag: str, suffix: str) -> Path | None:
    """The partial (or its ranges) of that blob, under whatever name its process gave it."""
    found = list(folder.glob(f"{etag}.hfget*{suffix}")) if folder.exists() else []
    return found[0] if found else None


def _done(partial: Path | None, listed: RemoteFile) -> int:
    """What the resume journal says is written (hfget's own reader: its format is _resume.py's business)."""
    return 0 if partial is None else sum(b - a for a, b in _resume.load(partial, listed))


def test_an_expired_cdn_link_mid_file_is_resolved_again_and_the_file_completes(hub: Hub, run_hfget):
    big = os.urandom(24 * MiB)
    hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 8 * MiB
    hub.cdn_url_uses = 2  # each signed link serves two requests, then answers 403

    result = run_hfget("org/model", "--endpoint", hub.url, "-q", "-c", "4")

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big
    assert any(s.status == 403 for s in hub.requests(origin="cdn"))
    assert len(hub.requests(method="GET", contains="/resolve/")) >= 2  # the link was resolved again


def test_limit_rate_never_lets_the_average_exceed_the_cap(hub: Hub, tmp_path: Path, hf_home: Path):
    payload = {f"shard-{i}.bin": os.urandom(1 * MiB) for i in range(3)}
    payload["big.safetensors"] = os.urandom(10 * MiB)
    hub.create_repo("org/model", payload)
    total = sum(len(v) for v in payload.values())
    cap = 4 * MiB
    times: dict[str, float] = {}

    class Clock:
        def handle(self, event):
            if isinstance(event, hfget.DownloadPlanned):
                times["start"] = time.monotonic()
            elif isinstance(event, hfget.DownloadFinished):
                times["end"] = time.monotonic()

        def advance(self, path, nbytes):
            pass

    path = hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path / "c", limit_rate=cap, sink=Clock())

    assert {name: (path / name).read_bytes() for name in payload} == payload
    # A lower bound only (the wait the cap imposes; no claim about how fast a shared machine is): the limiter
    # lets through a 50 ms burst, and each connection's first chunk is read before it is counted; 1 MiB covers both.
    assert times["end"] - times["start"] >= (total - MiB) / cap


def test_the_partial_file_never_grows_beyond_the_file(hub: Hub, hf_home: Path, run_hfget):
    big = os.urandom(32 * MiB)
    hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 16 * MiB
    etag = hashlib.sha256(big).hexdigest()
    largest = {"size": 0, "allocated": 0}
    stop = threading.Event()

    def watch():
        while not stop.wait(0.005):  # a sample every 5 ms, sleeping between
            try:
                st = _one(_blob_dir(hf_home), etag, ".incomplete").stat()
            except (FileNotFoundError, AttributeError):
                continue
            largest["size"] = max(largest["size"], st.st_size)
            largest["allocated"] = max(largest["allocated"], st.st_blocks * 512)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_hfget("org/model", "--endpoint", hub.url, "-c", "8")
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    assert 0 < largest["size"] <= len(big)
    assert largest["allocated"] <= len(big) + MiB  # filesystem blocks round up a little, never to twice


def test_a_server_that_ignores_range_still_gives_a_verified_file(hub: Hub, run_hfget):
    big = os.urandom(20 * MiB)
    hub.create_repo("org/model", {"model.safetensors": big})
    hub.ignore_range = True

    result = run_hfget("org/model", "--endpoint", hub.url, "-q")

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big
    assert len(hub.requests(origin="cdn", method="GET")) == 1  # one stream; no second connection tried


ARENAS_SCRIPT = """
import ctypes, sys
from hfget.cli import main
try:
    main()
except SystemExit as stop:
    assert not stop.code, stop.code
ctypes.CDLL(None).malloc_stats()  # to stderr: a block "Arena N:" per malloc arena
"""


@pytest.mark.skipif(not is_glibc(), reason="glibc's malloc arenas")
def test_the_cli_keeps_malloc_to_two_arenas_while_eight_connections_receive_1_mib_reads(hub: Hub, tmp_path: Path):
    """Each connection's thread churns through megabytes (1 MiB reads, copied twice more by h11 and httpcore2);
    glibc would give each thread that finds the arenas busy one of its own and keep what was freed there (the
    bench's `mirror` at -c 16: 207 MB peak instead of 120 MB)."""
    data = os.urandom(48 << 20)
    hub.create_repo("org/big", {"model.safetensors": data})
    hub.rate = 8e6  # per connection: the file takes all of its -c connections
    proc = subprocess.run([sys.executable, "-c", ARENAS_SCRIPT, "org/big", "--endpoint", hub.url, "-q", "-c", "8",
                           "--local-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == data
    assert hub.max_concurrent_cdn_gets >= 4  # several connections' threads at once
    assert 1 <= len(re.findall(r"^Arena \d+:", proc.stderr, re.MULTILINE)) <= 2, proc.stderr

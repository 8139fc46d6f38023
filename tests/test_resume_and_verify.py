"""A killed run resumes from the bytes on disk; corrupt bytes are caught before anything is published."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import hfget
from hfget import _resume
from hub import Fault, Hub
from waiting import finish, wait_until


def _partial(hf_home: Path, repo_folder: str, content: bytes) -> Path:
    """Where a partial of `content` is parked between runs."""
    return hf_home / "hub" / repo_folder / "blobs" / f"{hashlib.sha256(content).hexdigest()}.hfget.incomplete"


def _size_of_any_partial(parked: Path) -> int:
    """The size of the partial of that file under whatever name a running (or killed) process gave it."""
    base = parked.name.removesuffix(".hfget.incomplete")
    found = list(parked.parent.glob(f"{base}.hfget*.incomplete")) if parked.parent.exists() else []
    return found[0].stat().st_size if found else 0


def test_a_killed_run_resumes_with_a_range_for_the_missing_bytes_only(hub: Hub, hf_home: Path, run_hfget):
    big = os.urandom(6_000_000)
    commit = hub.create_repo("org/model", {"model.safetensors": big, "config.json": b"{}"})
    hub.rate = 2_000_000  # bytes/s: the file takes ~3 s, time enough to kill the run in the middle
    partial = _partial(hf_home, "models--org--model", big)

    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        wait_until(lambda: _size_of_any_partial(partial) >= 1_500_000, "1.5 MB of the partial on disk")
    finally:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = _size_of_any_partial(partial)
    assert 1_500_000 <= kept < len(big)
    snapshot = hf_home / "hub" / "models--org--model" / "snapshots" / commit
    assert not (snapshot / "model.safetensors").exists()  # nothing partial is published

    hub.rate = None
    hub.wait_idle()
    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == 0, result.stderr
    assert "resumed" in result.stderr
    cdn_gets = hub.requests(origin="cdn", method="GET")
    assert [g.range for g in cdn_gets] == [f"bytes={kept}-"]
    assert (snapshot / "model.safetensors").read_bytes() == big
    assert _size_of_any_partial(partial) == 0  # the killed run's partial was adopted, then published


def test_a_partial_from_a_killed_local_dir_run_resumes_too(hub: Hub, tmp_path: Path, run_hfget):
    big = os.urandom(3_000_000)
    hub.create_repo("org/model", {"data/big.bin": big})
    target = tmp_path / "plain"
    # a previous run got this far: the partial sits where hfget keeps local-dir partials
    first = run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target))
    assert first.returncode == 0
    (target / "data" / "big.bin").unlink()
    metadata_dir = target / ".cache" / "huggingface" / "download" / "data"
    partial = metadata_dir / f"big.bin.{hashlib.sha256(big).hexdigest()}.hfget.incomplete"
    partial.write_bytes(big[:1_000_000])

    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target))

    assert result.returncode == 0, result.stderr
    assert [g.range for g in hub.requests(origin="cdn", method="GET")] == ["bytes=1000000-"]
    assert (target / "data" / "big.bin").read_bytes() == big


def test_a_byte_corrupted_once_is_caught_and_the_file_fetched_again(hub: Hub, run_hfget):
    content = os.urandom(400_000)
    hub.create_repo("org/model", {"model.safetensors": content, "config.json": b'{"a": 1}'})
    hub.corrupt["model.safetensors"] = 1
    hub.corrupt["config.json"] = 1

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == 0, result.stderr
    snapshot = Path(result.stdout.strip().splitlines()[-1])
    assert (snapshot / "model.safetensors").read_bytes() == content
    assert (snapshot / "config.json").read_bytes() == b'{"a": 1}'
    assert "retrying model.safetensors" in result.stderr and "sha256" in result.stderr
    assert "retrying config.json" in result.stderr and "sha1" in result.stderr
    assert len(hub.requests(origin="cdn", method="GET")) == 2


def test_a_file_corrupted_every_time_fails_by_name_and_nothing_is_published(hub: Hub, hf_home: Path, run_hfget):
    content = os.urandom(300_000)
    commit = hub.create_repo("org/model", {"model.safetensors": content, "ok.txt": b"fine"})
    hub.corrupt["model.safetensors"] = 100

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert "model.safetensors" in last_line and "Traceback" not in result.stderr
    repo_folder = hf_home / "hub" / "models--org--model"
    assert not (repo_folder / "snapshots" / commit / "model.safetensors").exists()
    assert not (repo_folder / "blobs" / hashlib.sha256(content).hexdigest()).exists()
    assert not _partial(hf_home, "models--org--model", content).exists()
    assert (repo_folder / "snapshots" / commit / "ok.txt").read_bytes() == b"fine"  # the others still land
    assert len(hub.requests(origin="cdn", method="GET")) == 2  # fetched twice, then given up


def test_a_partial_longer_than_the_file_is_discarded_not_trusted(hub: Hub, hf_home: Path, run_hfget):
    content = os.urandom(100_000)
    hub.create_repo("org/model", {"model.safetensors": content})
    partial = _partial(hf_home, "models--org--model", content)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(os.urandom(150_000))

    result = run_hfget("org/model", "--endpoint", hub.url, "-q")

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == content
    assert [g.range for g in hub.requests(origin="cdn", method="GET")] == [None]


def test_a_partial_with_wrong_bytes_is_refetched_whole_after_the_hash_mismatch(hub: Hub, hf_home: Path, run_hfget):
    content = os.urandom(200_000)
    hub.create_repo("org/model", {"model.safetensors": content})
    partial = _partial(hf_home, "models--org--model", content)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"\0" * 50_000)  # same length prefix, wrong bytes

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip().splitlines()[-1]) / "model.safetensors").read_bytes() == content
    assert [g.range for g in hub.requests(origin="cdn", method="GET")] == ["bytes=50000-", None]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_exits_130_promptly_and_keeps_its_partial(hub: Hub, hf_home: Path, run_hfget, sig):
    big = os.urandom(4_000_000)
    hub.create_repo("org/model", {"model.safetensors": big})
    hub.rate = 1_000_000
    partial = _partial(hf_home, "models--org--model", big)
    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        wait_until(lambda: _size_of_any_partial(partial) >= 500_000, "500 kB of the partial on disk")
    except AssertionError:
        proc.kill()
        raise
    proc.send_signal(sig)
    stdout, stderr = finish(proc, f"hfget after {sig.name}")
    assert proc.returncode == 130, stderr  # stopped by the signal, not by finishing the file (kept < size below)
    assert "Traceback" not in stderr and "resume" in stderr.strip().splitlines()[-1]
    assert stdout == ""
    kept = partial.stat().st_size
    assert 500_000 <= kept < len(big)

    hub.rate = None
    hub.wait_idle()
    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url, "-q")
    assert result.returncode == 0, result.stderr
    assert [g.range for g in hub.requests(origin="cdn", method="GET")] == [f"bytes={kept}-"]
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big


def test_a_push_during_the_download_does_not_mix_two_commits(hub: Hub, run_hfget):
    old = {"model.safetensors": os.urandom(2_000_000), "config.json": b'{"v": 1}'}
    first = hub.create_repo("org/model", old)
    hub.faults.append(Fault("stall", origin="cdn", after=500_000, seconds=600))  # held until released
    proc = subprocess.Popen([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url, "-q", "-j", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        wait_until(lambda: hub.stalling == 1, "the weights' body to be under way")
    except AssertionError:
        proc.kill()
        raise
    hub.commit("org/model", {"config.json": b'{"v": 2}', "model.safetensors": os.urandom(2_000_000)})
    hub.release_stalls()  # the rest of the body goes out after the push
    stdout, stderr = finish(proc, "hfget fetching the old commit")
    assert proc.returncode == 0, stderr
    snapshot = Path(stdout.strip())
    assert snapshot.name == first
    assert (snapshot / "config.json").read_bytes() == b'{"v": 1}'
    assert (snapshot / "model.safetensors").read_bytes() == old["model.safetensors"]
    resolves = hub.requests(contains="/resolve/")
    assert resolves and all(f"/resolve/{first}/" in s.path for s in resolves)  # every file asked at that commit


def test_a_second_run_in_the_same_process_resumes_the_partial_the_first_one_left(hub: Hub, tmp_path: Path):
    """A program (or `hfget serve`) that tries again at once: the first run's partial was parked moments ago, and
    the second run takes it over instead of starting from zero."""
    import hfget

    data = os.urandom(3_000_000)
    hub.create_repo("org/model", {"weights.bin": data})
    hub.faults = [Fault("stall", origin="cdn", after=1_000_000, seconds=600)]  # until the hub stops
    cache = tmp_path / "cache"  # explicit: huggingface_hub reads HF_HOME once per process
    with pytest.raises(hfget.IncompleteDownloadError):
        hfget.download("org/model", endpoint=hub.url, retries=0, stall_timeout=1, cache_dir=cache)
    parked = cache / "models--org--model" / "blobs" / f"{hashlib.sha256(data).hexdigest()}.hfget.incomplete"
    kept = _size_of_any_partial(parked)
    assert 0 < kept < len(data)
    hub.faults = []
    hub.clear_log()
    path = hfget.download("org/model", endpoint=hub.url, cache_dir=cache)
    assert (path / "weights.bin").read_bytes() == data
    assert [g.range for g in hub.requests(origin="cdn", method="GET")] == [f"bytes={kept}-"]


@pytest.mark.parametrize("layout", ["cache-dir", "local-dir", "cache-dir without symlinks"])
def test_the_partials_left_for_a_file_another_tool_finished_are_removed_by_the_next_run(
    hub: Hub, tmp_path: Path, run_hfget, layout: str
):
    """A run stops with a partial parked, a dead run left one under its own name, and then another tool (the
    official client) fetches the file. Nothing would ever take those partials over, the file being there: the next
    run, which finds the file in place and fetches nothing, removes them. A partial a live run owns stays, and a
    dry run (`hfget ls`) removes nothing. Where symlinks are off, huggingface_hub moves the blob into the snapshot:
    with no blob in blobs/, another commit's file of the same content could still resume from the partial, so it
    stays."""
    from hfget._ownership import _HOST

    data = os.urandom(3_000_000)
    hub.create_repo("org/model", {"weights.bin": data, "config.json": b"{}"})
    hub.faults = [Fault("stall", origin="cdn", after=1_000_000, seconds=600)]  # until the hub stops
    kind, _, symlinks = layout.partition(" ")
    folder, etag = tmp_path / kind, hashlib.sha256(data).hexdigest()
    with pytest.raises(hfget.IncompleteDownloadError):
        hfget.download("org/model", endpoint=hub.url, retries=0, stall_timeout=1, **{kind.replace("-", "_"): folder})
    parked = (folder / "models--org--model" / "blobs" / f"{etag}.hfget.incomplete" if kind == "cache-dir" else
              folder / ".cache" / "huggingface" / "download" / f"weights.bin.{etag}.hfget.incomplete")
    assert 0 < parked.stat().st_size < len(data)
    no_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process has it: a dead run's
    dead = parked.with_name(parked.name.replace(".hfget.", f".hfget-{_HOST}-{no_pid}-1."))
    live = parked.with_name(parked.name.replace(".hfget.", f".hfget-{_HOST}-{os.getpid()}-2."))
    for leftover in (dead, live):
        leftover.write_bytes(data[:500_000])
        _resume.state_path(leftover).write_text("")
    hub.faults = []
    hub.release_stalls()
    subprocess.run([sys.executable, "-c", "from huggingface_hub import hf_hub_download; hf_hub_download("
                    f"'org/model', 'weights.bin', {kind.replace('-', '_')}={str(folder)!r}, endpoint={hub.url!r})"],
                   check=True, env={**os.environ, **({"HF_HUB_DISABLE_SYMLINKS": "1"} if symlinks else {})},
                   stdin=subprocess.DEVNULL)
    common = ("org/model", "--endpoint", hub.url, f"--{kind}", str(folder))

    listed = run_hfget("ls", *common)
    assert listed.returncode == 0, listed.stderr
    assert parked.exists() and dead.exists()  # a plan writes nothing

    hub.wait_idle()
    hub.clear_log()
    again = run_hfget(*common, "-q")

    assert again.returncode == 0, again.stderr
    assert hub.requests(origin="cdn") == []  # the file was in place: no body asked for
    assert (Path(again.stdout.strip()) / "weights.bin").read_bytes() == data
    kept = [parked, dead, live] if symlinks else [live]
    assert sorted(p.name for p in parked.parent.iterdir() if "incomplete" in p.name) == sorted(p.name for p in kept)
    assert _resume.state_path(dead).exists() == bool(symlinks) and _resume.state_path(live).exists()


def test_a_partial_parked_after_the_run_looked_is_removed_once_the_file_is_published(hub: Hub, tmp_path: Path):
    """Another process parks a partial of a large file after this run listed the partials (its listing is kept a
    few seconds): this run fetches the file itself, and then removes that partial, which no run would ever take
    over now that the blob is there (it stayed in blobs/ for good)."""
    big = os.urandom(12 << 20)
    hub.create_repo("org/model", {"model.safetensors": big, "config.json": b"{}"})
    cache = tmp_path / "cache"
    parked = cache / "models--org--model" / "blobs" / f"{hashlib.sha256(big).hexdigest()}.hfget.incomplete"

    class ParkOnStart:  # the other process's park, the moment this run starts the file
        def handle(self, event):
            if isinstance(event, hfget.FileStarted) and event.path == "model.safetensors":
                parked.write_bytes(big[: 1 << 20])
                _resume.state_path(parked).write_text("")  # its journal, beside it

        def advance(self, path, nbytes):
            pass

    snapshot = hfget.download("org/model", endpoint=hub.url, cache_dir=cache, sink=ParkOnStart())

    assert (snapshot / "model.safetensors").read_bytes() == big
    assert not parked.exists() and not _resume.state_path(parked).exists()
    assert [p.name for p in parked.parent.iterdir() if "incomplete" in p.name or p.suffix == ".ranges"] == []

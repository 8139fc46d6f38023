"""Defects found in review of the transfer-core refactor: one test per defect, on behaviour a user relies on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hfget
from hfget._errors import NetworkError
from hfget._hub import translate_error
from hfget._models import RemoteFile
from hfget._ownership import BlobLocks
from hfget._repo import Repo
from hfget._sync import Entry, SyncResult, write_lock
from hfget._verify import ContentHash, HashJob, PrefixHasher
from hub import Hub, _Handler

MiB = 1 << 20


def _table_states(stdout: str) -> dict[str, str]:
    """Path -> state ("cached", "fetch", "partial ...") from a --dry-run / ls table."""
    states = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("cached", "fetch", "partial"):
            states[parts[-1]] = parts[0]
    return states


# 1. PrefixHasher -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("broken", ["closed fd", "file shorter than listed"])
def test_prefix_hasher_read_error_sets_error_and_done_so_no_waiter_hangs(tmp_path: Path, broken: str):
    path = tmp_path / "partial"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    if broken == "closed fd":
        os.close(fd)
    file = RemoteFile("model.bin", 1000, "0" * 40, lfs_sha256="0" * 64)
    job = HashJob(fd, ContentHash(file), lambda: 1000)  # 1000 bytes "written": more than can be read back
    hasher = PrefixHasher()
    try:
        hasher.request(job)
        assert job.done.wait(timeout=10), "a read error left the job's waiter hanging"
        assert isinstance(job.error, OSError)
    finally:
        hasher.stop()
        if broken != "closed fd":
            os.close(fd)


def _job_on(tmp_path: Path, name: str, data: bytes, prefix=None) -> tuple[HashJob, int]:
    path = tmp_path / name
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    file = RemoteFile(name, len(data), "0" * 40, lfs_sha256=hashlib.sha256(data).hexdigest())
    return HashJob(fd, ContentHash(file), prefix or (lambda: len(data))), fd


def test_prefix_hasher_hashes_two_files_at_once(tmp_path: Path):
    """Files that end together are hashed side by side: while one file's hashing waits (here: its prefix is held
    until the test has seen the other one done), the other is hashed to its end on another thread."""
    release = threading.Event()
    second, second_fd = _job_on(tmp_path, "b.bin", os.urandom(3 * MiB))
    first, first_fd = _job_on(tmp_path, "a.bin", os.urandom(5 * MiB),
                              prefix=lambda: 5 * MiB if release.wait(timeout=30) else 0)
    hasher = PrefixHasher(threads=2)
    try:
        hasher.request(first)
        hasher.request(second)
        assert second.done.wait(timeout=10), "the second file waited for the first one's hashing"
        release.set()
        assert first.done.wait(timeout=10)
        assert first.content.hexdigest() == first.content.expected
        assert second.content.hexdigest() == second.content.expected
    finally:
        release.set()
        hasher.stop()
        os.close(first_fd)
        os.close(second_fd)


def test_prefix_hasher_reads_back_into_one_buffer_so_its_memory_does_not_grow_with_the_file(tmp_path: Path):
    """Hashing a 64 MiB prefix allocates no block per read: a new 4 MiB block a read, with the last one still held
    while the next was read, was 8 MiB of a download's peak memory (17 MB of the bench's 10 GiB file, measured)."""
    import tracemalloc

    job, fd = _job_on(tmp_path, "big.bin", os.urandom(64 * MiB))
    hasher = PrefixHasher(threads=1)
    tracemalloc.start()
    try:
        hasher.request(job)
        assert job.done.wait(timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        hasher.stop()
        os.close(fd)
    assert job.content.hexdigest() == job.content.expected
    assert peak < PrefixHasher.BLOCK, f"{peak} bytes at the peak"


def test_prefix_hasher_takes_up_a_file_again_when_more_came_while_it_hashed(tmp_path: Path):
    """The last bytes of a file are written while its thread is finishing the previous stretch: the request made
    then is not lost (the file's waiter would hang), the thread hashes the rest."""
    data = os.urandom(2 * MiB)
    written, calls = [MiB], [0]
    inside, go = threading.Event(), threading.Event()

    def prefix() -> int:
        calls[0] += 1
        value = written[0]
        if calls[0] == 2:  # the thread checks for more after the first MiB: hold it there, with the old answer
            inside.set()
            go.wait(timeout=30)
        return value

    job, fd = _job_on(tmp_path, "model.bin", data, prefix=prefix)
    hasher = PrefixHasher(threads=1)
    try:
        hasher.request(job)
        assert inside.wait(timeout=10)
        written[0] = len(data)  # the last MiB lands while the thread is still on the job...
        hasher.request(job)  # ...and its connection asks for it to be hashed
        go.set()
        assert job.done.wait(timeout=10), "a request made while the file was being hashed was lost"
        assert job.content.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        go.set()
        hasher.stop()
        os.close(fd)


def test_prefix_hasher_never_hashes_one_file_on_two_threads(tmp_path: Path):
    """Requests racing from many connections while the prefix grows: each byte is hashed once, in order (two
    threads on one file would feed some bytes twice and the digest would not match)."""
    data = os.urandom(24 * MiB)
    written = [0]

    def prefix() -> int:
        time.sleep(0.0005)  # a lock held by a connection: widens the window in which requests race
        return written[0]

    job, fd = _job_on(tmp_path, "model.bin", data, prefix=prefix)
    hasher = PrefixHasher(threads=4)

    def connection() -> None:
        for _ in range(2000):
            hasher.request(job)

    try:
        threads = [threading.Thread(target=connection) for _ in range(4)]
        for thread in threads:
            thread.start()
        for step in range(1, 97):
            written[0] = step * MiB // 4
            hasher.request(job)
        for thread in threads:
            thread.join()
        hasher.request(job)
        assert job.done.wait(timeout=20)
        assert job.error is None
        assert job.content.length == len(data)
        assert job.content.hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        hasher.stop()
        os.close(fd)


# 2. translate_error ----------------------------------------------------------------------------------------------

def _our_own_code(kind: type[Exception]) -> None:
    raise kind("a bug in hfget itself")


@pytest.mark.parametrize("kind", [ValueError, KeyError, TypeError])
def test_translate_error_leaves_our_own_bugs_untranslated(kind: type[Exception]):
    try:
        _our_own_code(kind)
    except kind as error:
        assert translate_error(error, repo=Repo("org/model"), revision="main", endpoint="http://127.0.0.1:1") is None


def test_translate_error_turns_unparseable_json_into_a_network_error():
    try:
        json.loads('{"sha": "abc')
    except json.JSONDecodeError as error:
        translated = translate_error(error, repo=Repo("org/model"), revision="main", endpoint="http://127.0.0.1:1")
    assert isinstance(translated, NetworkError)
    assert translated.exit_code == hfget.ExitCode.NETWORK == 5


def test_a_revision_answer_that_is_not_json_exits_5_with_one_line(hub: Hub, run_hfget, monkeypatch):
    # tests/hub.py has no knob for a broken revision answer: its handler is patched for this test only
    hub.create_repo("org/model", {"config.json": b"{}"})
    original = _Handler._api

    def broken_revision(self, types, repo_id, action, rest):
        if action == "revision":
            return self._send_bytes(200, b'{"id": "org/model", "sha": ', {"Content-Type": "application/json"})
        return original(self, types, repo_id, action, rest)

    monkeypatch.setattr(_Handler, "_api", broken_revision)

    result = run_hfget("org/model", "--endpoint", hub.url)

    assert result.returncode == hfget.ExitCode.NETWORK, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hfget: "), result.stderr
    assert hub.requests(contains="/revision/")  # the broken answer was actually served


# 3. Ctrl-C -------------------------------------------------------------------------------------------------------

def _interrupt_when_bytes_flow(command: list[str], hub: Hub, blobs: Path) -> subprocess.CompletedProcess:
    """Start `command`, send SIGINT once a partial file holds bytes (the download is running), collect it."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        flowing = False
        while not flowing and time.monotonic() < deadline and proc.poll() is None:
            partials = list(blobs.glob("*.incomplete")) if blobs.exists() else []
            flowing = bool(hub.requests(origin="hub", contains="/resolve/")) and any(
                _size(p) > 256 * 1024 for p in partials)
            time.sleep(0.02)
        assert flowing and proc.poll() is None, "the download was not running when it should be interrupted"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    hub.wait_idle()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@pytest.fixture
def slow_big_repo(hub: Hub, hf_home: Path) -> Path:
    """A repo with one 64 MiB LFS file served at 1 MiB/s per connection; returns its cache blobs folder."""
    hub.create_repo("org/model", {"model.safetensors": os.urandom(64 * MiB), "config.json": b"{}"})
    hub.rate = MiB
    return hf_home / "hub" / "models--org--model" / "blobs"


def test_ctrl_c_reaches_a_python_api_caller_as_keyboard_interrupt(hub: Hub, hf_home: Path, slow_big_repo: Path):
    script = f"""
import hfget
try:
    hfget.download("org/model", endpoint={hub.url!r}, cache_dir={str(hf_home / "hub")!r})
    print("FINISHED", flush=True)
except Exception as error:
    print("CAUGHT-EXCEPTION", type(error).__name__, flush=True)
except KeyboardInterrupt:
    print("KEYBOARD-INTERRUPT", flush=True)
"""
    result = _interrupt_when_bytes_flow([sys.executable, "-c", script], hub, slow_big_repo)

    assert result.stdout.split() == ["KEYBOARD-INTERRUPT"], result.stdout + result.stderr


def test_ctrl_c_stops_the_cli_with_exit_code_130(hub: Hub, slow_big_repo: Path):
    # (test_resume_and_verify.py covers this too; kept here beside the Python API case)
    result = _interrupt_when_bytes_flow([sys.executable, "-m", "hfget", "org/model", "--endpoint", hub.url],
                                        hub, slow_big_repo)

    assert result.returncode == hfget.ExitCode.INTERRUPTED == 130, result.stderr
    assert "Traceback" not in result.stderr


# 4. BlobLocks.offset ---------------------------------------------------------------------------------------------

def test_blob_lock_offset_is_the_same_in_every_process_and_differs_between_keys():
    key = "not-hex: xet/ünïcode path.bin"
    code = f"from hfget._ownership import BlobLocks; print(BlobLocks.offset({key!r}))"
    offsets = []
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        offsets.append(int(proc.stdout))
    assert offsets[0] == offsets[1], "two processes would lock different bytes for one blob"
    assert offsets[0] == BlobLocks.offset(key)
    keys = [key, "other-key", "a" * 64, "b" * 64, "a" * 40, "x"]
    assert len({BlobLocks.offset(k) for k in keys}) == len(keys)


# 5. verify --repair ----------------------------------------------------------------------------------------------

def _without_privileges() -> list[str]:
    """A command prefix under which root is subject to file permissions (no CAP_DAC_OVERRIDE, CAP_FOWNER...)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is missing: cannot make a removal fail")
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all"]


def test_verify_repair_fails_loudly_when_the_bad_file_cannot_be_removed(hub: Hub, hf_home: Path, run_hfget):
    prefix = _without_privileges()
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(200_000)}
    hub.create_repo("org/model", files)
    snapshot = Path(run_hfget("org/model", "--endpoint", hub.url, "-q").stdout.strip())
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))
    blobs = blob.parent
    blobs.chmod(0o555)
    try:
        # the set-up works: without privileges nothing can be removed from the blobs folder
        probe = subprocess.run([*prefix, sys.executable, "-c", f"import os; os.unlink({str(blob)!r})"],
                               capture_output=True, timeout=60)
        assert probe.returncode != 0 and blob.exists()

        proc = subprocess.run([*prefix, sys.executable, "-m", "hfget", "verify", "org/model", "--endpoint", hub.url,
                               "--repair"], capture_output=True, text=True, timeout=120, env=os.environ.copy(),
                              stdin=subprocess.DEVNULL)
    finally:
        blobs.chmod(0o755)

    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "model.safetensors" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert blob.read_bytes() == bytes(data)  # the bad blob is indeed still there, as the failure says


# 6. plans write nothing and count what is on disk -----------------------------------------------------------------

def _disk_state(root: Path) -> dict[str, tuple[bool, int, int]]:
    state = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            info = path.lstat()
            state[path.relative_to(root).as_posix()] = (stat.S_ISDIR(info.st_mode), info.st_size, info.st_mtime_ns)
    info = root.lstat()
    state["."] = (True, info.st_size, info.st_mtime_ns)
    return state


@pytest.mark.parametrize("command", [["ls"], ["download", "--dry-run"]])
def test_plan_of_a_local_dir_writes_nothing_and_counts_an_unrecorded_good_file_as_present(
    hub: Hub, tmp_path: Path, run_hfget, command: list[str]
):
    hub.create_repo("org/model", {"config.json": b'{"a": 1}', "weights/model.safetensors": os.urandom(300_000)})
    target = tmp_path / "plain"
    assert run_hfget("org/model", "--endpoint", hub.url, "--local-dir", str(target), "-q").returncode == 0
    record = target / ".cache" / "huggingface" / "download" / "config.json.metadata"
    record.unlink()  # the file must now be hashed to be trusted
    before = _disk_state(target)
    time.sleep(0.05)  # a write after this would show in an mtime

    result = run_hfget(*command, "org/model", "--endpoint", hub.url, "--local-dir", str(target))

    assert result.returncode == 0, result.stderr
    assert _disk_state(target) == before
    assert _table_states(result.stdout) == {"config.json": "cached", "weights/model.safetensors": "cached"}


def test_dry_run_counts_a_file_whose_blob_is_cached_as_present(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/model", {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(300_000)})
    snapshot = Path(run_hfget("org/model", "--endpoint", hub.url, "-q").stdout.strip())
    (snapshot / "model.safetensors").unlink()  # the link is gone, the verified blob stays
    repo_folder = snapshot.parent.parent
    before = _disk_state(repo_folder)
    hub.clear_log()

    result = run_hfget("org/model", "--endpoint", hub.url, "--dry-run", "--json")

    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {f["path"]: f["present"] for f in plan["files"]} == {"config.json": True, "model.safetensors": True}
    assert plan["files_to_fetch"] == 0 and plan["bytes_to_fetch"] == 0
    assert not hub.file_gets()
    assert _disk_state(repo_folder) == before


# 7. HF_HUB_DISABLE_SYMLINKS --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "symlinks"), [("0", True), ("false", True), ("1", False)])
def test_hf_hub_disable_symlinks_is_read_as_huggingface_hub_reads_it(hub: Hub, run_hfget, value: str,
                                                                     symlinks: bool):
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(100_000)}
    hub.create_repo("org/model", files)

    result = run_hfget("org/model", "--endpoint", hub.url, "-q", env={"HF_HUB_DISABLE_SYMLINKS": value})

    assert result.returncode == 0, result.stderr
    snapshot = Path(result.stdout.strip())
    assert {name: (snapshot / name).read_bytes() for name in files} == files
    assert [(snapshot / name).is_symlink() for name in sorted(files)] == [symlinks] * len(files)


# 8. hfget.lock written concurrently --------------------------------------------------------------------------------

def test_concurrent_lock_writes_all_succeed_and_leave_one_valid_lock(tmp_path: Path):
    folder = tmp_path / "ci"
    folder.mkdir()
    manifest = folder / "hfget.toml"
    manifest.write_text('[[repo]]\nid = "org/model"\n')
    expected = []
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        results = [SyncResult(Entry(id=f"org/model-{index}"), f"{index:x}" * 40, None)]
        try:
            for _ in range(100):
                write_lock(manifest, results)
        except BaseException as error:  # handed to the test
            errors.append(error)

    for index in range(8):
        expected.append([{"entry": Entry(id=f"org/model-{index}").key(), "commit": f"{index:x}" * 40}])
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(os.listdir(folder)) == ["hfget.lock", "hfget.toml"]  # no temporary file left behind
    lock = json.loads((folder / "hfget.lock").read_text())
    assert lock["version"] == 1 and lock["repos"] in expected

"""A disk that cannot hold the download: refused up front, or a clear error mid-way with partials kept."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

import hfget
from hub import Hub

MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 12 MiB tmpfs (needs root, as on the CI machine)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_download_that_cannot_fit_is_refused_before_the_first_byte(hub: Hub, small_disk: Path, run_hfget):
    hub.create_repo("org/model", {"a.safetensors": os.urandom(9 * MiB), "b.safetensors": os.urandom(9 * MiB)})

    result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(small_disk))

    assert result.returncode == hfget.ExitCode.STORAGE
    line = result.stderr.strip().splitlines()[-1]
    assert "Not enough space" in line and "--no-space-check" in line and "Traceback" not in result.stderr
    assert hub.file_gets() == []
    # the listing it paid for is kept (it is written beside the transfers, which never started): asked for once
    assert (small_disk / "CACHEDIR.TAG").is_file()
    hub.wait_idle()
    hub.clear_log()
    again = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(small_disk))
    assert again.returncode == hfget.ExitCode.STORAGE
    hub.wait_idle()
    assert [s.path for s in hub.log] == ["/api/models/org/model/revision/main"]


def test_running_out_of_space_mid_way_is_a_clear_error_and_keeps_the_partials(hub: Hub, small_disk: Path,
                                                                              run_hfget):
    first, second = os.urandom(7 * MiB), os.urandom(9 * MiB)
    hub.create_repo("org/model", {"a.bin": first, "b.bin": second})

    result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(small_disk), "--no-space-check",
                       "-j", "1")

    assert result.returncode == hfget.ExitCode.STORAGE, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "No space left" in line and "Traceback" not in result.stderr
    repo = small_disk / "models--org--model"
    published = {p.name: p.read_bytes() for p in (repo / "snapshots").rglob("*.bin")}
    assert all(content in (first, second) for content in published.values())  # nothing corrupt published
    assert list((repo / "blobs").glob("*.incomplete"))  # the partial stays for a later resume

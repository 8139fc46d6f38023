"""`hfget verify`: finds a flipped byte and a missing file, offline too; --repair fetches only those."""

from __future__ import annotations

import os
from pathlib import Path

import hfget
from hub import Hub


def test_verify_finds_a_flipped_byte_and_repair_fixes_only_that_file(hub: Hub, hf_home: Path, run_hfget):
    files = {"config.json": b'{"a": 1}', "model.safetensors": os.urandom(100_000), "b.txt": b"bbb"}
    hub.create_repo("org/model", files)
    snapshot = Path(run_hfget("org/model", "--endpoint", hub.url, "-q").stdout.strip())
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[5000] ^= 1
    blob.write_bytes(bytes(data))

    checked = run_hfget("verify", "org/model", "--endpoint", hub.url)
    assert checked.returncode == hfget.ExitCode.FAILED
    assert "bad  model.safetensors" in checked.stdout and "2 of 3 files good" in checked.stdout

    hub.clear_log()
    repaired = run_hfget("verify", "org/model", "--endpoint", hub.url, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert (snapshot / "model.safetensors").read_bytes() == files["model.safetensors"]
    fetched = [s.path for s in hub.file_gets()]
    assert len(fetched) == 2 and all("model.safetensors" in p or "/lfs/" in p for p in fetched)


def test_verify_works_offline_from_the_cached_listing(hub: Hub, hf_home: Path, run_hfget):
    hub.create_repo("org/model", {"a.txt": b"a", "b.txt": b"b"})
    snapshot = Path(run_hfget("org/model", "--endpoint", hub.url, "-q").stdout.strip())
    (snapshot / "b.txt").unlink()
    hub.stop()

    result = run_hfget("verify", "org/model", "--endpoint", hub.url, "--json", env={"HF_HUB_OFFLINE": "1"})

    assert result.returncode == hfget.ExitCode.FAILED, result.stderr
    import json

    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert {f["path"]: f["status"] for f in report["files"]} == {"a.txt": "ok", "b.txt": "missing"}

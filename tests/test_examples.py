"""The examples in examples/ work as written, against the test Hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub import Hub

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _env(hf_home: Path, hub: Hub) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where the installed `hfget` and this python live
    return {**os.environ, "HF_MIRROR": hub.url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_prefetch_then_offline(hub: Hub, hf_home: Path):
    commit = hub.create_repo("org/model", {"config.json": b"{}", "model.safetensors": b"W" * 1000,
                                           "extra.bin": b"skip me"})
    proc = subprocess.run(["bash", str(EXAMPLES / "prefetch.sh"), "org/model", "*.json", "*.safetensors"],
                          capture_output=True, text=True, env=_env(hf_home, hub), timeout=120)
    assert proc.returncode == 0, proc.stderr
    snapshot = Path(proc.stdout.strip())
    assert snapshot.name == commit
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]


def test_hfd_shell_function(hub: Hub, hf_home: Path, tmp_path: Path):
    hub.create_repo("org/data", {"train.parquet": b"PAR1"}, repo_type="dataset")
    script = f'source {EXAMPLES / "hfd.sh"} && hfd datasets/org/data --local-dir {tmp_path / "d"} -q'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=_env(hf_home, hub),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "train.parquet").read_bytes() == b"PAR1"

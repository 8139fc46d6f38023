"""Peak resident memory of hfget downloading one large file from the test Hub (issue #3: under 150 MB for 10 GB).

    python benchmarks/memory.py            # a 10 GiB file (needs 10 GiB free disk for the copy)
    python benchmarks/memory.py --gib 2

The source is a sparse file (the Hub serves it with sendfile, so the server costs little); hfget writes a real
10 GiB partial file over several connections, hashes it, and publishes it. The peak RSS of the hfget process
is read from getrusage once it exits.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hub import Hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hfget-memory-"))
    hub = Hub(work / "hub").start()
    try:
        source = work / "big.bin"
        with open(source, "wb") as f:
            f.truncate(int(args.gib * (1 << 30)))
        hub.create_repo("bench/huge", {"model.safetensors": source})
        started = time.perf_counter()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "hfget"), "bench/huge", "--endpoint", hub.url,
             "--cache-dir", str(work / "cache"), "-q"],
            capture_output=True, text=True, env={**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1"},
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        size = source.stat().st_size
        print(f"{args.gib:g} GiB in {seconds:.1f}s ({size / seconds / 1e6:.0f} MB/s), peak RSS {peak_mb:.0f} MB "
              f"({'meets' if peak_mb < 150 else 'MISSES'} the 150 MB target)")
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Soak: a few hundred files through seeded random faults of every kind at once."""

from __future__ import annotations

import os
import random
from pathlib import Path

from hub import Hub, most_fetched

MiB = 1 << 20


def test_random_faults_of_every_kind_end_with_identical_files_and_no_byte_fetched_thrice(hub: Hub, run_hfget):
    rng = random.Random(2026)
    files = {f"data/{i // 50}/{i:03d}.json": rng.randbytes(rng.randint(1, 20_000)) for i in range(300)}
    files.update({f"weights/part-{i}.safetensors": os.urandom(rng.randint(9, 16) * MiB) for i in range(3)})
    files["empty.txt"] = b""
    hub.create_repo("org/model", files)
    hub.chaos(seed=7, probability=0.08)
    hub.rate = 16 * MiB  # per connection: the large files are split over several ranges, each a target

    result = run_hfget("org/model", "--endpoint", hub.url, "-q", "--stall-timeout", "1", "--retries", "10",
                       timeout=300)

    assert result.returncode == 0, result.stderr
    snapshot = Path(result.stdout.strip())
    for path, content in files.items():
        assert (snapshot / path).read_bytes() == content, path
    hub.wait_idle()
    bodies = [s for s in hub.file_gets() if s.sent]
    assert sum(1 for s in hub.log if s.status >= 500 or s.status == 429) > 5  # the chaos did happen
    assert any(s.fault in ("reset", "stall") for s in bodies)  # and the faulted bodies are in the count
    assert most_fetched(bodies) <= 2  # a corrupted body is fetched again whole: twice, never three times

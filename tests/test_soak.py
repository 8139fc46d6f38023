"""Soak: a few hundred files through seeded random faults of every kind at once."""

from __future__ import annotations

import os
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

from hub import Hub

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
    assert _most_fetched(bodies) <= 2  # a corrupted body is fetched again whole: twice, never three times


def _most_fetched(served) -> int:
    """The most times any byte of any file was fetched, from each body's start (its Range) and bytes sent.

    Every body counts, faulted ones included (the hub counts each byte it writes): a reset or stalled body up to
    where it broke off, and the retry starts where the client's bytes ended.

    A connection whose range was split (another connection took its second half, starting later at a byte
    inside it) stops at that byte; what the server had pushed past it into socket buffers was never read, so
    each body is clipped at the start of any later request that began inside it. The same clip covers a stalled
    body the client gave up on: what the server pushed after the stall went to a closed socket, past the byte
    where the retry began."""
    bodies: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for s in served:
        match = re.match(r"bytes=(\d+)-", s.range or "")
        start = int(match.group(1)) if match else 0
        key = s.path.rsplit("/", 1)[-1] if s.origin == "cdn" else s.path.split("/resolve/", 1)[-1].split("/", 1)[-1]
        bodies[key].append((s.at, start, start + s.sent))
    most = 0
    for spans in bodies.values():
        edges = Counter()
        for at, start, end in spans:
            cut = min([s for t, s, _ in spans if t > at and start < s < end], default=end)
            edges[start] += 1
            edges[cut] -= 1
        depth = 0
        for position in sorted(edges):
            depth += edges[position]
            most = max(most, depth)
    return most

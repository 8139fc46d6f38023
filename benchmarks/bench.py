"""hfget against `hf download` on the same local test Hub, in the same run: ratios of median wall times.

    python benchmarks/bench.py                 # every scenario, 3 runs each (about 5 minutes on 2 cores)
    python benchmarks/bench.py many no-op -n 5 # some scenarios, 5 runs each

Scenarios (issue #3):
    mirror   25 MB/s per connection, 40 ms latency, 2 files of 512 MiB        target >= 5x
    many     no cap, 40 ms latency, 2,000 files of 8 KiB                     target >= 4x
    local    no cap, no latency, 2 x 512 MiB plus 200 small files           target >= 1.25x
    no-op    the `many` repo again, everything already in the cache         target >= 3.33x (issue 11: <= 0.30x)
    no-op-14 a 14-file repo again, everything already in the cache         target >= 2.86x (issue 11: <= 0.35x)
    startup  `hfget --help` against `hf --help`                             target >= 8.33x (issue 11: <= 0.12x)

Runs of the two tools alternate; each download goes to a fresh cache and every output file is checked against
the source's sha256 before its time counts. The Hub is tests/hub.py, serving bodies with sendfile; its raw
single-stream speed (one plain httpx2 GET) is printed first, so a reader can see it is not the bottleneck.
Both tools are the ones installed next to this Python (`hfget`, and `hf` from huggingface_hub).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hub import Hub

MiB = 1 << 20
BIN = Path(sys.executable).parent


@dataclass
class Scenario:
    name: str
    target: float
    rate: float | None = None
    latency: float = 0.0


SCENARIOS = {
    "mirror": Scenario("mirror", 5.0, rate=25e6, latency=0.040),
    "many": Scenario("many", 4.0, latency=0.040),
    "local": Scenario("local", 1.25),
    "no-op": Scenario("no-op", 1 / 0.30, latency=0.040),
    "no-op-14": Scenario("no-op-14", 1 / 0.35, latency=0.040),
    "startup": Scenario("startup", 1 / 0.12),
}


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n


def build_repos(hub: Hub, data: Path) -> dict[str, dict[str, str]]:
    """Create the repos; return repo id -> {path: sha256} for checking outputs."""
    big = {}
    for i in (1, 2):
        path = data / f"big-{i}.bin"
        write_random(path, 512 * MiB)
        big[f"model-0000{i}-of-00002.safetensors"] = path
    many = {f"shards/{i // 100:02d}/file-{i:04d}.json": os.urandom(8 * 1024) for i in range(2000)}
    small = {f"tokenizer/part-{i:03d}.txt": os.urandom(4096 + 97 * i) for i in range(200)}
    hub.create_repo("bench/mirror", {**big, "config.json": b"{}"})
    hub.create_repo("bench/many", many)
    # a small model's 14 files: configs, tokenizer, a README and one LFS weight file
    model = {name: os.urandom(2048 + 311 * i) for i, name in enumerate(
        ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
         "vocab.json", "merges.txt", "README.md", ".gitattributes", "chat_template.jinja", "added_tokens.json",
         "preprocessor_config.json", "LICENSE"])}
    hub.create_repo("bench/small", {**model, "model.safetensors": os.urandom(4 * MiB)})
    hub.create_repo("bench/local", {**big, **small})
    expected = {}
    for (_repo_type, repo_id), repo in hub.repos.items():
        tree = repo.commits[repo.refs["main"]]
        expected[repo_id] = {p: blob.sha256 for p, blob in tree.items()}
    return expected


def check_output(snapshot: Path, expected: dict[str, str]) -> None:
    for path, sha in expected.items():
        digest = hashlib.sha256()
        with open(snapshot / path, "rb") as f:
            while chunk := f.read(8 * MiB):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            raise SystemExit(f"wrong bytes in {snapshot / path}")


def command(tool: str, repo: str, hub: Hub, cache: Path) -> list[str]:
    if tool == "hfget":
        return [str(BIN / "hfget"), repo, "--endpoint", hub.url, "--cache-dir", str(cache), "-q"]
    return [str(BIN / "hf"), "download", repo, "--cache-dir", str(cache), "--quiet"]


def environment(hub: Hub, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def run_download(scenario: Scenario, hub: Hub, work: Path, expected, runs: int) -> dict[str, list[float]]:
    repo = {"no-op": "bench/many", "no-op-14": "bench/small"}.get(scenario.name, f"bench/{scenario.name}")
    hub.rate, hub.latency = scenario.rate, scenario.latency
    times: dict[str, list[float]] = {"hfget": [], "hf": []}
    warm: dict[str, Path] = {}
    if scenario.name.startswith("no-op"):  # fill one cache per tool first; the timed runs find everything there
        for tool in times:
            warm[tool] = work / f"warm-{tool}"
            timed(command(tool, repo, hub, warm[tool]), environment(hub, work / f"home-{tool}"))
    for run in range(runs):
        for tool in (("hfget", "hf") if run % 2 == 0 else ("hf", "hfget")):
            cache = warm.get(tool) or work / f"cache-{tool}-{run}"
            seconds, output = timed(command(tool, repo, hub, cache), environment(hub, work / f"home-{tool}"))
            check_output(Path(output) if output else _snapshot(cache, repo), expected[repo])
            times[tool].append(seconds)
            if tool not in warm:
                shutil.rmtree(cache, ignore_errors=True)
    return times


def _snapshot(cache: Path, repo: str) -> Path:
    folder = cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    return next(folder.iterdir())


def run_startup(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"hfget": [], "hf": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    for _run in range(max(runs, 5)):
        for tool, cmd in (("hfget", [str(BIN / "hfget"), "--help"]), ("hf", [str(BIN / "hf"), "--help"])):
            times[tool].append(timed(cmd, env)[0])
    return times


def raw_speed(hub: Hub) -> float:
    import httpx2

    hub.rate, hub.latency = None, 0.0
    url = f"{hub.url}/bench/local/resolve/main/model-00001-of-00002.safetensors"
    with httpx2.Client(follow_redirects=True, timeout=60) as client:
        started = time.perf_counter()
        size = 0
        with client.stream("GET", url) as response:
            for chunk in response.iter_raw():
                size += len(chunk)
        return size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} "
                        "(default: all)")
    parser.add_argument("-n", "--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hfget-bench-"))
    hub = Hub(work / "hub").start()
    try:
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"{platform.system()} {platform.release()}", flush=True)
        expected = build_repos(hub, work)
        print(f"test Hub raw single-stream speed: {raw_speed(hub) / 1e6:.0f} MB/s", flush=True)
        print(f"{'scenario':10} {'hfget s':>9} {'hf s':>9} {'ratio':>7} {'target':>7}  met", flush=True)
        all_met = True
        unknown = set(args.scenarios) - set(SCENARIOS)
        if unknown:
            raise SystemExit(f"unknown scenario: {', '.join(sorted(unknown))}")
        for name in args.scenarios or list(SCENARIOS):
            scenario = SCENARIOS[name]
            times = run_startup(args.runs) if name == "startup" else run_download(scenario, hub, work, expected,
                                                                                   args.runs)
            ours, theirs = statistics.median(times["hfget"]), statistics.median(times["hf"])
            ratio = theirs / ours
            met = ratio >= scenario.target
            all_met &= met
            print(f"{name:10} {ours:9.3f} {theirs:9.3f} {ratio:6.2f}x {scenario.target:6.2f}x  "
                  f"{'yes' if met else 'NO'}", flush=True)
        print("all targets met" if all_met else "some targets missed")
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

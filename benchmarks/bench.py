"""hfget against `hf download` (and aria2c, where installed) on the same local test Hub, in the same run.

    python benchmarks/bench.py                 # every scenario, 3 runs each (about 10 minutes on 2 cores)
    python benchmarks/bench.py many no-op -n 5 # some scenarios, 5 runs each

Scenarios and targets (issue #11); "ratio" is hfget's median wall time over the other tool's, lower is better:
    many       no cap, 40 ms latency, 2,000 files of 8 KiB                   hfget/hf <= 0.10
    no-op      the `many` repo again, everything already in the cache        hfget/hf <= 0.30
    no-op-14   a 14-file repo again, everything already in the cache         hfget/hf <= 0.35
    startup    `hfget --help` against `hf --help`                            hfget/hf <= 0.12
    local      no cap, no latency, 2 x 512 MiB plus 200 small files           hfget/hf <= 0.55
    https      `local` over TLS (the Hub and its CDN with a certificate of a CA the bench makes, trustme), as
               the Hub and hf-mirror.com are reached: hfget/hf, shown without a target (issue #11 names none;
               the Hub's encryption runs on the same two cores, a cost both tools share)
    mirror     25 MB/s per connection, 40 ms latency, 2 files of 512 MiB     hfget/aria2c (-x4 -j5) <= 0.45
    resume     `mirror`, hfget killed with SIGKILL at a random point, then run again: bytes served / repo size
               <= 1.02
    memory     peak resident memory of hfget fetching one 10 GiB file (sparse source): < 100 MB
    two-mirrors  hfget from two mirrors of one commit against hfget from one, each mirror capped at 20 MB/s per
               connection and 60 MB/s in all, 40 ms latency, 2 x 512 MiB: one mirror's time / two's >= 1.7

`many` and `no-op` go through an nginx front (nginx_front.py) where nginx and its echo module are installed: nginx
answers the 2,000 file requests after the same 40 ms, so the Python test Hub's CPU per request is not counted
against the client on the same two cores; without it they use the test Hub alone, and the bench says which.

Beside each scenario the bench prints its physical limit: the latency bound (requests / requests in flight x
round trip), the disk's write speed for the bytes of the repo (measured here, page cache included, as hfget
writes), the link cap (connections x the per-connection rate), or the interpreter's own start-up. On a VM whose
host takes idle memory back (this one reports free pages to its hypervisor: virtio free page reporting), the
write speed is how fast the host hands pages back to the page cache: on this machine 1 GiB of buffered writes took
3.5-4.7 s after a few idle seconds and 0.3 s right after another such write, and 1.2 s with O_DIRECT (dd), so the
figure moves with what ran just before it.

For `many` and the no-op re-runs the bench also times benchmarks/floor.py, alternating with the tools: the least
a program on hfget's HTTP stack does for the scenario (the GETs from 64 threads over two forked processes, as
hfget splits many small files, each body written, hashed, renamed into place and linked, without even the lookup
and listing; or the one lookup of a re-run), with none of a downloader's other work. It is printed as "httpx2
floor" beside the ratio: a target below it is out of reach, on this machine, of a client on httpx2 (httpx2's
AsyncClient on one event loop measured slower for the same work than threads).

Runs of the tools alternate; each download goes to a fresh cache and every output file is checked against the
source's sha256 before its time counts. The caches of `many` are deleted when the scenario ends, not between runs:
on an ext4 without a journal (this VM's), every new inode is allocated past the inodes freed in the last 30 s,
reading each one's inode block (the kernel's `recently_deleted`), and with the previous run's 4,000 just deleted
that was a quarter to a third of the `many` profile (perf), a cost of the bench's own clean-up for both tools.

The Hub is tests/hub.py, serving bodies with sendfile; its raw single-stream speed (one plain httpx2 GET) is
printed first, so a reader can see it is not the bottleneck. The tools are the ones installed next to this
Python (`hfget`, and `hf` from huggingface_hub), and `aria2c` from PATH (the bench says so when it is
missing: `apt-get install aria2`).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from nginx_front import NginxFront, available

from hub import Hub

MiB = 1 << 20
BIN = Path(sys.executable).parent
IN_FLIGHT = 64  # requests in flight for the latency bound (issue #11)
CONNECTIONS = 64  # hfget's default --max-connections, for the link cap
ARIA2C = shutil.which("aria2c")
FLOOR = Path(__file__).with_name("floor.py")


@dataclass
class Scenario:
    name: str
    target: float | None  # the most the ratio may be (for `memory`: megabytes); None: shown, no target
    repo: str = ""
    rate: float | None = None
    latency: float = 0.0
    against: str = "hf"
    front: bool = False  # through the nginx front, where installed
    clean_at_end: bool = False  # delete the runs' caches when the scenario ends (see the module docstring)


FRONTS: dict[str, NginxFront] = {}  # repo -> its nginx front, started on first use


def endpoint(scenario: Scenario, hub: Hub, work: Path) -> str:
    """Where the tools are pointed: the nginx front for the scenarios that use one (where installed), else the Hub."""
    if not scenario.front or not available():
        return hub.url
    if scenario.repo not in FRONTS:
        FRONTS[scenario.repo] = NginxFront.start(hub, work, repos=[scenario.repo], latency=scenario.latency)
    return FRONTS[scenario.repo].url


SCENARIOS = {
    "many": Scenario("many", 0.10, "bench/many", latency=0.040, front=True, clean_at_end=True),
    "no-op": Scenario("no-op", 0.30, "bench/many", latency=0.040, front=True),
    "no-op-14": Scenario("no-op-14", 0.35, "bench/small", latency=0.040),
    "startup": Scenario("startup", 0.12),
    "local": Scenario("local", 0.55, "bench/local"),
    "https": Scenario("https", None, "bench/local"),
    "mirror": Scenario("mirror", 0.45, "bench/mirror", rate=25e6, latency=0.040, against="aria2c"),
    "resume": Scenario("resume", 1.02, "bench/mirror", rate=25e6, latency=0.040, against="repo"),
    "memory": Scenario("memory", 100.0, against="MB"),
    "two-mirrors": Scenario("two-mirrors", 1.7, "bench/mirror", rate=20e6, latency=0.040, against="1 mirror"),
}


@dataclass
class Result:
    ours: float
    theirs: float | None  # None: the other tool is missing
    limit: str
    ratio: float | None
    extra: str = ""


# -- the repos ---------------------------------------------------------------------------------------------------


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
    fourteen: dict[str, bytes | Path] = {f"config-{i:02d}.json": os.urandom(2048 + i) for i in range(12)}
    fourteen.update({"model.safetensors": os.urandom(8 * MiB), "tokenizer.json": os.urandom(MiB)})
    hub.create_repo("bench/mirror", {**big, "config.json": b"{}"})
    hub.create_repo("bench/many", many)
    hub.create_repo("bench/local", {**big, **small})
    hub.create_repo("bench/small", fourteen)
    expected = {}
    for (_repo_type, repo_id), repo in hub.repos.items():
        tree = repo.commits[repo.refs["main"]]
        expected[repo_id] = {p: blob.sha256 for p, blob in tree.items()}
    return expected


def repo_bytes(hub: Hub, repo_id: str) -> int:
    repo = hub.repos[("model", repo_id)]
    return sum(blob.size for blob in repo.commits[repo.refs["main"]].values())


def check_output(snapshot: Path, expected: dict[str, str]) -> None:
    for path, sha in expected.items():
        digest = hashlib.sha256()
        with open(snapshot / path, "rb") as f:
            while chunk := f.read(8 * MiB):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            raise SystemExit(f"wrong bytes in {snapshot / path}")


# -- running the tools -------------------------------------------------------------------------------------------


def command(tool: str, repo: str, url: str, cache: Path) -> list[str]:
    if tool == "floor-files":  # the files listed in the cache folder by one_run, and nothing else (see floor.py)
        return [sys.executable, str(FLOOR), "files", url, repo, str(cache), str(cache / "paths.txt")]
    if tool == "floor-lookup":  # the one request of a re-run, and nothing else
        return [sys.executable, str(FLOOR), "lookup", url, repo]
    if tool == "hfget":
        return [str(BIN / "hfget"), repo, "--endpoint", url, "--cache-dir", str(cache), "-q"]
    if tool == "aria2c":
        return [str(ARIA2C), "-x4", "-j5", "-s4", "-k1M", "--file-allocation=none", "--console-log-level=error",
                "--summary-interval=0", "-q", "-i", str(cache / "urls.txt"), "-d", str(cache)]
    return [str(BIN / "hf"), "download", repo, "--cache-dir", str(cache), "--quiet"]


def clean_environment() -> dict[str, str]:
    """This environment without HF_* settings, and with bytecode caching on: an installed tool has its .pyc files
    (pip compiles them), so neither tool should recompile its source on every run (PYTHONDONTWRITEBYTECODE)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "PYTHONDONTWRITEBYTECODE"}


def environment(url: str, home: Path) -> dict[str, str]:
    env = clean_environment()
    env.update(HF_ENDPOINT=url, HF_HOME=str(home), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def aria2c_input(url: str, repo: str, folder: Path, expected: dict[str, str]) -> None:
    """hfd.sh's way: one resolve URL per file, each with its output path."""
    folder.mkdir(parents=True)
    lines = [f"{url}/{repo}/resolve/main/{path}\n  out={path}\n" for path in expected]
    (folder / "urls.txt").write_text("".join(lines))


def one_run(tool: str, scenario: Scenario, url: str, work: Path, expected: dict[str, str], cache: Path) -> float:
    if tool == "aria2c":
        aria2c_input(url, scenario.repo, cache, expected)
    elif tool == "floor-files":
        cache.mkdir(parents=True)
        (cache / "paths.txt").write_text("\n".join(expected))
    seconds, output = timed(command(tool, scenario.repo, url, cache), environment(url, work / f"home-{tool}"))
    if tool == "aria2c":
        check_output(cache, expected)
    elif tool == "floor-files":
        check_output(cache / "snapshots" / "main", expected)
    elif tool != "floor-lookup":  # the lookup writes nothing
        check_output(Path(output) if output else _snapshot(cache, scenario.repo), expected)
    return seconds


def run_download(scenario: Scenario, hub: Hub, work: Path, expected: dict[str, str], runs: int,
                 tools: tuple[str, ...]) -> dict[str, list[float]]:
    hub.rate, hub.latency = scenario.rate, scenario.latency
    url = endpoint(scenario, hub, work)
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    warm: dict[str, Path] = {}
    if scenario.name.startswith("no-op"):  # fill one cache per tool first; the timed runs find everything there
        for tool in tools:
            warm[tool] = work / f"warm-{scenario.name}-{tool}"
            timed(command(tool, scenario.repo, url, warm[tool]), environment(url, work / f"home-{tool}"))
    kept = []  # the caches deleted when the scenario ends (clean_at_end)
    for run in range(runs):
        for tool in (tools if run % 2 == 0 else tools[::-1]):
            cache = warm.get(tool) or work / f"cache-{tool}-{run}"
            times[tool].append(one_run(tool, scenario, url, work, expected, cache))
            if tool in warm:
                continue
            if scenario.clean_at_end:
                kept.append(cache)
            else:
                shutil.rmtree(cache, ignore_errors=True)
    for cache in kept:
        shutil.rmtree(cache, ignore_errors=True)
    return times


def _snapshot(cache: Path, repo: str) -> Path:
    folder = cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    return next(folder.iterdir())


# -- the scenarios -------------------------------------------------------------------------------------------------


def startup(runs: int) -> Result:
    times: dict[str, list[float]] = {"hfget": [], "hf": [], "python": []}
    env = clean_environment()
    for _run in range(max(runs, 5)):
        for tool, cmd in (("hfget", [str(BIN / "hfget"), "--help"]), ("hf", [str(BIN / "hf"), "--help"]),
                          ("python", [sys.executable, "-c", "pass"])):
            times[tool].append(timed(cmd, env)[0])
    ours, theirs = statistics.median(times["hfget"]), statistics.median(times["hf"])
    return Result(ours, theirs, f"{statistics.median(times['python']):.3f} s python", ours / theirs)


def downloads(scenario: Scenario, hub: Hub, work: Path, expected: dict[str, dict[str, str]], runs: int) -> Result:
    tools = ("hfget", "hf", "aria2c") if scenario.against == "aria2c" and ARIA2C else ("hfget", "hf")
    least = {"many": "floor-files", "no-op": "floor-lookup", "no-op-14": "floor-lookup"}.get(scenario.name)
    times = run_download(scenario, hub, work, expected[scenario.repo], runs, tools + ((least,) if least else ()))
    medians = {tool: statistics.median(t) for tool, t in times.items()}
    against = scenario.against if scenario.against in medians else None
    theirs = medians[against] if against else None
    versus_hf = f"hfget/hf {medians['hfget'] / medians['hf']:.2f}"
    if least and theirs:
        extra = f"httpx2 floor {medians[least]:.3f} s ({medians[least] / theirs:.2f} of {against})"
    elif against == "aria2c":
        extra = f"hf {medians['hf']:.3f} s, {versus_hf}"
    else:
        extra = f"aria2c not installed (apt-get install aria2); {versus_hf}" if scenario.against == "aria2c" else ""
    return Result(medians["hfget"], theirs, limit(scenario, hub, work), medians["hfget"] / theirs if theirs else None,
                  extra)


def limit(scenario: Scenario, hub: Hub, work: Path) -> str:
    """The scenario's physical limit, as a time (see the module docstring)."""
    repo = hub.repos[("model", scenario.repo)]
    files = len(repo.commits[repo.refs["main"]])
    if scenario.name.startswith("no-op"):
        return f"{scenario.latency:.3f} s 1 request"
    if scenario.name == "many":
        return f"{math.ceil(files / IN_FLIGHT) * scenario.latency:.2f} s latency, {IN_FLIGHT} in flight"
    size = repo_bytes(hub, scenario.repo)
    disk = disk_seconds(work, size)
    if scenario.rate is None:
        return f"{disk:.2f} s disk"
    link = size / (scenario.rate * CONNECTIONS)
    return f"{max(disk, link):.2f} s {'disk' if disk >= link else 'link'} (link {link:.2f} s)"


def disk_seconds(work: Path, size: int) -> float:
    """Seconds to write `size` bytes into fresh files in the benchmark's folder, 8 MiB writes, no fsync."""
    block = os.urandom(8 * MiB)
    target = work / "disk-speed.bin"
    started = time.perf_counter()
    with open(target, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def resume(scenario: Scenario, hub: Hub, work: Path, expected: dict[str, dict[str, str]], runs: int) -> Result:
    """Kill -9 hfget at a random moment of a download (seeded), run it again, count the body bytes served."""
    hub.rate, hub.latency = scenario.rate, scenario.latency
    size = repo_bytes(hub, scenario.repo)
    draw = random.Random(11)
    ratios, full = [], one_run("hfget", scenario, hub.url, work, expected[scenario.repo], work / "resume-full")
    for run in range(runs):
        cache = work / f"resume-{run}"
        hub.clear_log()
        env = environment(hub.url, work / "home-hfget")
        proc = subprocess.Popen(command("hfget", scenario.repo, hub.url, cache), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        time.sleep(draw.uniform(0.2, 0.8) * full)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        hub.wait_idle()
        one_run("hfget", scenario, hub.url, work, expected[scenario.repo], cache)
        ratios.append(sum(s.sent for s in hub.file_gets()) / size)
        shutil.rmtree(cache, ignore_errors=True)
    return Result(statistics.median(ratios), None, "1.00x", statistics.median(ratios),
                  "bytes served / repo: " + ", ".join(f"{r:.3f}" for r in ratios))


def memory(work: Path, hub: Hub, gib: float = 10) -> Result:
    """Peak resident memory of one hfget process fetching a sparse 10 GiB file: its own high-water mark (VmHWM),
    read from /proc while it runs. Not its rusage from wait4: the kernel starts a child's `ru_maxrss` at its
    parent's resident size when it forks and execs, so it reported this bench's own size (the test Hub runs in
    it and grows over a full run: 95-104 MB in full runs, where GNU time measured hfget at 53-57 MB; a
    /bin/true child of a 150 MB process reports 160 MB)."""
    source = work / "huge.bin"
    with open(source, "wb") as f:
        f.truncate(int(gib * (1 << 30)))
    hub.rate, hub.latency = None, 0.0
    if ("model", "bench/huge") not in hub.repos:
        hub.create_repo("bench/huge", {"model.safetensors": source})
    cache = work / "cache-huge"
    hub.clear_log()
    started = time.perf_counter()
    proc = subprocess.Popen(command("hfget", "bench/huge", hub.url, cache),
                            env=environment(hub.url, work / "home-hfget"), stdout=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _high_water(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"hfget failed on the 10 GiB file ({proc.returncode})")
    shutil.rmtree(cache, ignore_errors=True)
    streams = len({served.peer for served in hub.requests(origin="cdn")})  # the file's connections
    return Result(peak, None, f"{gib:g} GiB in {seconds:.1f} s", peak, f"{streams} connection(s)")


def _high_water(pid: int) -> float:
    """A process's peak resident memory so far, in MB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def https(scenario: Scenario, hub: Hub, work: Path, expected: dict[str, dict[str, str]], runs: int) -> Result:
    """`local` from a second Hub serving the same repo over TLS; every tool trusts the bench's CA through
    SSL_CERT_FILE, as a user behind a private CA would (hf download's httpx2 client reads it too). The Hub encrypts
    on the same two cores as the client it serves (no sendfile over TLS): the same cost for both tools."""
    import ssl

    import trustme

    ca = trustme.CA()
    ca_file = work / "bench-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    secure = Hub(work / "hub-tls", tls=server).start()
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(ca_file)  # environment() copies it into every tool's environment
    try:
        secure.mirror_of(hub, scenario.repo)
        return downloads(scenario, secure, work, expected, runs)
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before
        secure.stop()


def two_mirrors(scenario: Scenario, hub: Hub, work: Path, expected: dict[str, dict[str, str]], runs: int) -> Result:
    """hfget from two mirrors against hfget from the first alone: the same repo and commit on a second Hub, each
    Hub capped per connection and in total. Besides wall times, each mirror's share of the body bytes."""
    second = Hub(work / "hub-2").start()
    second.mirror_of(hub, scenario.repo)
    times: dict[str, list[float]] = {"two": [], "one": []}
    shares = []
    try:
        for mirror in (hub, second):
            mirror.rate, mirror.total_rate, mirror.latency = scenario.rate, 60e6, scenario.latency
        for run in range(runs):
            for key in (("two", "one") if run % 2 == 0 else ("one", "two")):
                mirrors = [hub, second] if key == "two" else [hub]
                cache = work / f"cache-mirrors-{key}-{run}"
                cmd = [str(BIN / "hfget"), scenario.repo, "--cache-dir", str(cache), "-q"]
                cmd += [arg for mirror in mirrors for arg in ("--mirror", mirror.url)]
                for mirror in mirrors:
                    mirror.clear_log()
                seconds, output = timed(cmd, environment(hub.url, work / "home-mirrors"))
                check_output(Path(output), expected[scenario.repo])
                times[key].append(seconds)
                if key == "two":
                    shares.append("+".join(f"{sum(s.sent for s in m.file_gets()) / MiB:.0f}" for m in mirrors))
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        hub.total_rate = None
        second.stop()
    two, one = statistics.median(times["two"]), statistics.median(times["one"])
    size = repo_bytes(hub, scenario.repo)
    return Result(two, one, f"{size / 120e6:.2f} s both links", one / two, f"MiB per mirror: {', '.join(shares)}")


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


def run_scenario(name: str, hub: Hub, work: Path, expected: dict[str, dict[str, str]], runs: int) -> Result:
    scenario = SCENARIOS[name]
    table: dict[str, Callable[[], Result]] = {
        "startup": lambda: startup(runs),
        "resume": lambda: resume(scenario, hub, work, expected, runs),
        "memory": lambda: memory(work, hub),
        "two-mirrors": lambda: two_mirrors(scenario, hub, work, expected, runs),
        "https": lambda: https(scenario, hub, work, expected, runs),
    }
    return table.get(name, lambda: downloads(scenario, hub, work, expected, runs))()


def report(name: str, result: Result) -> bool:
    scenario = SCENARIOS[name]
    if scenario.target is None:
        met = True
    elif name == "memory":
        met = result.ours < scenario.target
    elif name == "two-mirrors":  # a speed-up: the more the better
        met = result.ratio is not None and result.ratio >= scenario.target
    else:
        met = result.ratio is not None and result.ratio <= scenario.target
    theirs = f"{result.theirs:9.3f}" if result.theirs is not None else f"{'-':>9}"
    ratio = f"{result.ratio:6.2f}" if result.ratio is not None else f"{'-':>6}"
    unit = {"MB": " MB", "repo": "x"}.get(scenario.against, "")
    bound = ">=" if name == "two-mirrors" else "<="
    target = f"{bound} {scenario.target:<6g} {'yes' if met else 'NO'}" if scenario.target is not None else \
        f"{'(no target)':<13}"
    print(f"{name:9} {result.ours:9.3f}{unit:3} {theirs} {scenario.against:>6}  {result.limit:34} {ratio} "
          f"{target}  {result.extra}", flush=True)
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} "
                        "(default: all)")
    parser.add_argument("-n", "--runs", type=int, default=3)
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario: {', '.join(sorted(unknown))}")
    work = Path(tempfile.mkdtemp(prefix="hfget-bench-"))
    hub = Hub(work / "hub").start()
    try:
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"{platform.system()} {platform.release()}; aria2c: {ARIA2C or 'not installed'}; nginx front for "
              f"many/no-op: {'yes' if available() else 'no (apt-get install nginx libnginx-mod-http-echo)'}",
              flush=True)
        expected = build_repos(hub, work)
        print(f"test Hub raw single-stream speed: {raw_speed(hub) / 1e6:.0f} MB/s", flush=True)
        for tool in ("hfget", "hf"):  # once untimed: each tool's bytecode caches are written, as after an install
            timed(command(tool, "bench/small", hub.url, work / f"warm-up-{tool}"), environment(hub.url, work / "h"))
        print(f"{'scenario':9} {'hfget':>12} {'other':>9} {'vs':>6}  {'physical limit':34} {'ratio':>6} target",
              flush=True)
        results = [report(name, run_scenario(name, hub, work, expected, args.runs))
                   for name in args.scenarios or list(SCENARIOS)]
        print("all targets met" if all(results) else "some targets missed")
    finally:
        for front in FRONTS.values():
            front.stop()
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

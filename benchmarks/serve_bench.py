"""`hfget serve` for a team: four clients pulling a cached 1 GiB repo at once, against nginx serving the same files.

    python benchmarks/serve_bench.py           # needs nginx on PATH (Debian: apt-get install nginx-light)

1. warm: the repo is in serve's cache; four clients (plain streaming GETs through httpx2, the same client for both)
   pull it at once from serve and from nginx serving the same blobs as static files; the ratio of the times
   (target: serve within 1.5x of nginx). Also four `hf download` clients through serve at once.
2. cold: four clients pull the repo through serve from the test Hub at once (each file crosses upstream once),
   against one `hf download` of the repo straight from the test Hub.
Every output is checked against the source's sha256.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench import check_output as check  # the same sha256 check as bench.py (benchmarks/ is on sys.path)

from hub import Hub
from serving import start_serve

MiB = 1 << 20
BIN = Path(sys.executable).parent
CLIENTS = 4


def make_repo(hub: Hub, data: Path) -> dict[str, str]:
    files: dict[str, Path | bytes] = {}
    for i in range(4):
        path = data / f"shard-{i}.bin"
        with open(path, "wb") as f:
            for _ in range(16):
                f.write(os.urandom(16 * MiB))
        files[f"model-{i}.safetensors"] = path
    files["config.json"] = b"{}"
    hub.create_repo("bench/serve", files)
    tree = hub.repos[("model", "bench/serve")].commits[hub.repos[("model", "bench/serve")].refs["main"]]
    ETAGS.update({blob.sha256: blob.etag for blob in tree.values()})
    return {p: blob.sha256 for p, blob in tree.items()}


ETAGS: dict[str, str] = {}  # sha256 -> the blob's name in the cache


def hf_download(endpoint: str, cache: Path) -> Path:
    out = subprocess.run([str(BIN / "hf"), "download", "bench/serve", "--quiet", "--cache-dir", str(cache)],
                         env={**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1"},
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def clients_at_once(endpoint: str, work: Path, expected: dict[str, str]) -> float:
    caches = [work / f"client-{i}" for i in range(CLIENTS)]
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        snapshots = list(pool.map(lambda c: hf_download(endpoint, c), caches))
    elapsed = time.perf_counter() - started
    for snapshot in snapshots:
        check(snapshot, expected)
    for cache in caches:
        shutil.rmtree(cache)
    return elapsed


def pull_at_once(urls: dict[str, str], work: Path) -> float:
    """Four clients GET every file (sha256 -> URL) at once, each written to disk, then checked: the same client
    for serve and for nginx, so the servers are compared, not the clients."""
    import httpx2

    def pull(i: int) -> None:
        out = work / f"pull-{i}"
        out.mkdir()
        with httpx2.Client(timeout=60, follow_redirects=True) as client:
            for sha, url in urls.items():
                with client.stream("GET", url) as response, open(out / sha, "wb") as f:
                    response.raise_for_status()
                    for chunk in response.iter_raw():
                        f.write(chunk)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(pull, range(CLIENTS)))
    elapsed = time.perf_counter() - started
    for i in range(CLIENTS):
        check(work / f"pull-{i}", {sha: sha for sha in urls})  # each file is named by its sha256
        shutil.rmtree(work / f"pull-{i}")
    return elapsed


def with_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    conf = work / "nginx.conf"
    port = 18000 + os.getpid() % 1000
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user} daemon off; worker_processes 2; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{ access_log off; sendfile on; tcp_nopush on;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    nginx = subprocess.Popen(["nginx", "-c", str(conf)])
    time.sleep(0.5)
    return nginx, f"http://127.0.0.1:{port}"


def main() -> None:
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed: apt-get install nginx-light")
    work = Path(tempfile.mkdtemp(prefix="hfget-serve-bench-", dir=os.environ.get("BENCH_DIR")))
    hub = Hub(work / "hub").start()
    try:
        expected = make_repo(hub, work)
        total = sum(os.path.getsize(work / f"shard-{i}.bin") for i in range(4)) + 2
        server = start_serve(work / "serve-cache", "--endpoint", hub.url)
        cold = clients_at_once(server.url, work, expected)
        upstream = sum(s.sent for s in hub.file_gets())
        hub.clear_log()
        warm = clients_at_once(server.url, work, expected)
        served = pull_at_once({sha: f"{server.url}/bench/serve/resolve/main/{name}" for name, sha in expected.items()},
                              work)
        server.stop()
        one = time.perf_counter()
        check(hf_download(hub.url, work / "direct"), expected)
        one = time.perf_counter() - one
        nginx, url = with_nginx(work / "serve-cache" / "models--bench--serve" / "blobs", work)
        try:
            plain = pull_at_once({sha: f"{url}/{ETAGS[sha]}" for sha in expected.values()}, work)
        finally:
            nginx.terminate()
            nginx.wait()
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    gb = CLIENTS * total / 1e9
    print(f"repo {total / 1e9:.2f} GB, {CLIENTS} clients")
    print(f"warm, same client: serve {served:.2f} s ({gb / served:.2f} GB/s), nginx {plain:.2f} s "
          f"({gb / plain:.2f} GB/s): serve takes {served / plain:.2f}x nginx's time (target <= 1.5x)")
    print(f"warm, {CLIENTS} hf download clients through serve: {warm:.2f} s ({gb / warm:.2f} GB/s)")
    print(f"cold: {CLIENTS} clients through serve {cold:.2f} s, one hf download from the Hub {one:.2f} s; "
          f"upstream sent {upstream / total:.2f}x the repo")


if __name__ == "__main__":
    main()

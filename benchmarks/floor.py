"""The least a program on hfget's HTTP stack takes for the bench's request-bound scenarios; bench.py prints it beside
hfget's time, so a reader can see how much of a miss is hfget's and how much the stack's.

    python benchmarks/floor.py files URL REPO FOLDER PATHS     # `many`: the files listed in PATHS, alone
    python benchmarks/floor.py lookup URL REPO                 # `no-op`, `no-op-14`: the one request a re-run needs

Each is run as a fresh process, as the tools are, so Python's start-up and the import of httpx2 are counted.
`files` fetches each path with a GET from IN_FLIGHT threads in all (the requests in flight of the bench's latency
bound, and hfget's default `--jobs`), split over one forked process per CPU, at most two (a process is CPU-bound
on the GIL with thousands of small files; hfget hands half of them to a helper process the same way, forked too
when it runs no other thread), each thread with its own httpx2 client over one TLS context (as hfget's workers
do; no CA store is loaded for an http:// URL), and does only what a verified download into the cache layout
must: write the body to a partial file, hash it as it arrives (the git blob id the Hub lists for a small file),
rename it into `blobs/` and link it from the snapshot. No revision lookup, no listing, no locks, no retries, no
events, no checks: a floor, not a client (a client also needs the lookup and the listing: one or two round trips
more). `lookup` imports httpx2 and asks for the revision's commit
(`expand=sha`), nothing else.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import sys
import threading
from pathlib import Path

import httpx2

IN_FLIGHT = 64


def files(url: str, repo: str, folder: Path, paths: list[str]) -> None:
    blobs, snapshot = folder / "blobs", folder / "snapshots" / "main"
    blobs.mkdir(parents=True)
    for path in paths:
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
    processes = min(2, os.cpu_count() or 1)
    children = []
    for index in range(1, processes):
        child = os.fork()
        if child == 0:  # before any thread: the fork is safe
            code = 1
            try:
                share(url, repo, blobs, snapshot, paths[index::processes], IN_FLIGHT // processes)
                code = 0
            except SystemExit as failed:
                print(failed, file=sys.stderr)
            finally:  # whatever happened: never on into the parent's half
                os._exit(code)
        children.append(child)
    share(url, repo, blobs, snapshot, paths[::processes], IN_FLIGHT // processes)
    if any(os.waitpid(child, 0)[1] for child in children):
        raise SystemExit("floor: a process failed")


def share(url: str, repo: str, blobs: Path, snapshot: Path, paths: list[str], threads_count: int) -> None:
    """Fetch `paths` from `threads_count` threads."""
    queue = iter(paths)
    lock = threading.Lock()
    context = ssl.create_default_context() if url.startswith("https:") else False  # no CA store for http://

    failures: list[Exception] = []

    def worker() -> None:
        with httpx2.Client(verify=context) as client:
            while True:
                with lock:
                    path = next(queue, None)
                if path is None:
                    return
                try:
                    fetch(client, f"{url}/{repo}/resolve/main/{path}", blobs, snapshot / path)
                except Exception as error:  # reported once all threads are done: the bench must not time a failure
                    failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(min(threads_count, len(paths)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"floor: {len(failures)} fetches failed, the first: {failures[0]!r}")


def fetch(client: httpx2.Client, url: str, blobs: Path, link: Path) -> None:
    partial = blobs / f"{link.name}.{threading.get_ident()}.incomplete"
    with client.stream("GET", url) as response, open(partial, "wb", buffering=0) as out:
        response.raise_for_status()
        digest = hashlib.sha1(f"blob {response.headers['content-length']}\0".encode())
        for chunk in response.iter_raw():
            out.write(chunk)
            digest.update(chunk)
    blob = blobs / digest.hexdigest()
    os.replace(partial, blob)
    os.symlink(os.path.relpath(blob, link.parent), link)


def lookup(url: str, repo: str) -> None:
    answer = httpx2.get(f"{url}/api/models/{repo}/revision/main", params={"expand": "sha"},
                        verify=url.startswith("https:"))
    answer.raise_for_status()


if __name__ == "__main__":
    if sys.argv[1] == "files":
        files(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]).read_text().split())
    else:
        lookup(sys.argv[2], sys.argv[3])

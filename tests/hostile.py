"""A misbehaving Hub of the test suite's own: each path prefix is one way a server can try to hang a client.

    /loop-pages/...      the file list's `Link: next` points at the page itself, forever
    /redirects/...       every API answer is a redirect to itself
    /trickle/...         the revision answer arrives one byte at a time
    /bomb/...            the revision answer is a gzip bomb (a few hundred kB that inflate to 300 MiB)
    /headers/...         the revision answer carries a flood of headers
    /endless/...         a well-formed repo whose one file's body never ends (chunked, no Content-Length)
    /garbled-<k>/...     the file list is JSON of another shape: GARBLED[k] (an object, not a list; a number; an
                         LFS entry without its sha256; a file without a path; a size that is not a number)

Use `http://127.0.0.1:PORT/<mode>` as the endpoint. Every request is counted in `requests`.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
import zlib

COMMIT = "c" * 40
FILE = {"type": "file", "oid": "a" * 40, "size": 10, "path": "a.txt"}


GARBLED = {
    "object": {"error": "not a list"},
    "number": 42,
    "lfs": [{**FILE, "lfs": {"size": 10, "pointerSize": 130}}],
    "pathless": [{"type": "file", "oid": "a" * 40, "size": 10}],
    "sizeless": [{"type": "file", "oid": "a" * 40, "size": "10", "path": "a.txt"}],
}


@functools.cache
def _bomb() -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(squeeze.compress(zeros) for _ in range(300)) + squeeze.flush()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.paths.append(self.path)
        mode, _, rest = self.path.lstrip("/").partition("/")
        try:
            if mode.startswith("garbled-"):
                self._garbled(mode.removeprefix("garbled-"), "/" + rest)
                return
            getattr(self, f"_{mode.replace('-', '_')}")("/" + rest)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _json(self, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _revision(self) -> None:
        self._json({"id": "org/model", "sha": COMMIT, "siblings": []})

    def _loop_pages(self, path: str) -> None:
        if "/tree/" in path:
            here = f"http://{self.headers['Host']}/loop-pages{path}"
            self._json([FILE], {"Link": f'<{here}>; rel="next"'})
        else:
            self._revision()

    def _garbled(self, kind: str, path: str) -> None:
        if "/tree/" in path:
            self._json(GARBLED[kind])
        else:
            self._revision()

    def _redirects(self, path: str) -> None:
        self.send_response(302)
        self.send_header("Location", f"/redirects{path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _trickle(self, path: str) -> None:
        data = json.dumps({"id": "org/model", "sha": COMMIT}).encode() + b" " * 10_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for byte in data:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            if self.server.stopping.wait(0.05):
                return

    def _bomb(self, path: str) -> None:
        data = _bomb()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _headers(self, path: str) -> None:
        self.send_response(200)
        for index in range(20_000):
            self.send_header(f"X-Flood-{index}", "x" * 100)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def _endless(self, path: str) -> None:
        if "/tree/" in path:
            self._json([FILE])
        elif "/resolve/" in path:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            while not self.server.stopping.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self._revision()


class HostileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests = 0
        self.paths: list[str] = []  # every request's path, in order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> HostileServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        time.sleep(0)

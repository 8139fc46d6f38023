"""Real proxies for tests, on 127.0.0.1: a forward proxy (pproxy, http and socks5 on one port) and a reverse proxy
that serves the test Hub under a path prefix, as Artifactory or Nexus do.

- `ForwardProxy`: pproxy from PyPI, run as a subprocess with `user:password` credentials. It logs one line per
  connection it opens to a target (`http 127.0.0.1:PORT -> 127.0.0.1:TARGET`); `connections(port)` counts them.
  An https:// target can only be reached through it by CONNECT (the proxy has no key for the Hub's certificate).
- `PrefixProxy`: http.server in a thread; `PREFIX/rest` is forwarded to the Hub as `/rest` (headers and body passed
  through as they are, `Location` and `Link` included, as nginx's default does for relative and foreign URLs);
  anything outside the prefix is a 404. `log` holds each request's path as it arrived.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from hub import free_port


class ForwardProxy:
    def __init__(self, *, user: str = "hfuser", password: str = "s3cret-proxy-pass") -> None:
        self.user, self.password = user, password
        self.port = free_port()
        self.lines: list[str] = []
        pproxy = Path(sys.executable).with_name("pproxy")
        command = [str(pproxy), "-l", f"http+socks5://127.0.0.1:{self.port}/#{user}:{password}", "-v"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        stdin=subprocess.DEVNULL)
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_listening()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"pproxy did not listen on {self.port}: {self.lines}")

    def connections(self, url: str) -> int:
        """Connections the proxy opened to the origin of `url` (one log line each)."""
        target = f"-> 127.0.0.1:{urlsplit(url).port}"
        return sum(1 for line in self.lines if line.endswith(target))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class PrefixProxy:
    def __init__(self, upstream: str, prefix: str) -> None:
        self.upstream = urlsplit(upstream)
        self.prefix = prefix.rstrip("/")
        self.log: list[str] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET")

            def do_HEAD(self) -> None:
                proxy.forward(self, "HEAD")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def forward(self, handler: http.server.BaseHTTPRequestHandler, method: str) -> None:
        self.log.append(handler.path)
        if not handler.path.startswith(self.prefix + "/"):
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        skip = {"host", "connection"}
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in skip}
        upstream.request(method, handler.path[len(self.prefix):], headers=headers)
        response = upstream.getresponse()
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                handler.send_header(name, value)
        handler.end_headers()
        while method != "HEAD" and (chunk := response.read(1 << 16)):
            handler.wfile.write(chunk)
        upstream.close()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""An nginx front for the test Hub: file bodies of regular (non-LFS) files from nginx, the rest from the Hub.

For thousands of small files the test Hub (Python's http.server) spends about half a millisecond of CPU per request,
on the same two cores as the client it is measuring; a real Hub or mirror costs the client's machine nothing.
This front answers `HEAD`/`GET .../resolve/<rev>/<path>` of regular files itself, as the Hub does (200 with the git
blob sha1 as `ETag` and `X-Repo-Commit`), after the same latency as the Hub's (`echo_sleep`, from Debian's
libnginx-mod-http-echo, which is non-blocking), and passes every other request (the API, LFS redirects, the CDN)
to the Hub. The files are laid out under `<work>/front/<repo>/resolve/<rev>/<path>` as hard links (or copies) of
the Hub's blobs, for the branch and the commit.

    front = NginxFront.start(hub, work, repos=["bench/many"], latency=0.040)   # front.url is the endpoint
    front.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hub import Hub


def available() -> bool:
    """nginx with the echo module (Debian: apt-get install nginx libnginx-mod-http-echo)."""
    return shutil.which("nginx") is not None and any(Path("/usr/lib/nginx/modules").glob("*echo*"))


@dataclass
class NginxFront:
    process: subprocess.Popen[bytes]
    url: str

    @classmethod
    def start(cls, hub: Hub, work: Path, *, repos: list[str], latency: float) -> NginxFront:
        root = work / "front"
        etags = [_lay_out(hub, root, repo) for repo in repos]
        port = _free_port()
        conf = work / "nginx-front.conf"
        conf.write_text(_config(root, work, port, hub.url, latency, {k: v for e in etags for k, v in e.items()}))
        process = subprocess.Popen(["nginx", "-c", str(conf)], stderr=subprocess.DEVNULL)
        _wait_listening(port)
        return cls(process, f"http://127.0.0.1:{port}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def _lay_out(hub: Hub, root: Path, repo_id: str) -> dict[str, str]:
    """Regular files under resolve/<branch> and resolve/<commit>; returns URI -> ETag header value."""
    repo = hub.repos[("model", repo_id)]
    commit = repo.refs["main"]
    etags = {}
    for revision in ("main", commit):
        for path, blob in repo.commits[commit].items():
            if blob.lfs:
                continue
            target = root / repo_id / "resolve" / revision / path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(blob.disk_path, target)
            except OSError:
                shutil.copyfile(blob.disk_path, target)
            etags[f"/{repo_id}/resolve/{revision}/{path}"] = f'"{blob.sha1}" {commit}'
    return etags


def _config(root: Path, work: Path, port: int, upstream: str, latency: float, etags: dict[str, str]) -> str:
    user = "user root;" if os.geteuid() == 0 else ""
    entries = "\n".join(f'    "{uri}" \'{value}\';' for uri, value in etags.items())
    return f"""{user} daemon off; worker_processes 2; pid {work}/nginx-front.pid; error_log {work}/nginx-front.log;
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
events {{ worker_connections 1024; }}
http {{
  access_log off; sendfile on; tcp_nodelay on; keepalive_requests 100000;
  map_hash_max_size 262144; map_hash_bucket_size 256;
  map $uri $front_meta {{ default ""; {entries} }}
  map $front_meta $front_etag {{ "~^(?<e>\\S+) " $e; }}
  map $front_meta $front_commit {{ "~ (?<c>\\S+)$" $c; }}
  upstream hub {{ server {upstream.removeprefix("http://")}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    location / {{
      if ($front_meta = "") {{ proxy_pass http://hub; }}
      echo_sleep {latency};
      echo_exec @file;
    }}
    location @file {{
      root {root}; etag off;
      add_header ETag $front_etag always; add_header X-Repo-Commit $front_commit always;
    }}
  }}
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header Host $http_host;
  proxy_buffering off;
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start (see nginx-front.log in the bench's work folder)")

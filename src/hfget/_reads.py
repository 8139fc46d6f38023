"""Larger reads for file bodies: a network backend for httpcore2 (its documented extension point; see
_compat.fast_transport for where it is used).

httpcore2 asks its network stream for 64 KiB per read; on a fast link the per-read Python work in h11 and httpcore2
is what bounds a download (profiled: h11's receive buffer is the top frame). These streams take up to 1 MiB a read
(measured: 64 KiB -> 256 KiB, -25% wall time on a 1 GiB localhost download; 256 KiB -> 1 MiB, the bench's `local`
3.2-3.4 s -> 2.3-2.4 s and `mirror` -20% CPU: each read is one recv, one pass through h11 and httpcore2, and GIL
hand-offs among the connections, whatever its size).
- A connection starts at 64 KiB and doubles its reads while the socket fills them (halving when it does not): a
  1 MiB buffer is above glibc's mmap threshold, so a small file's one read cost an mmap, an mremap and a munmap
  (strace: 3 calls a file of the 2,000 in `many`; A/B 4 pairs, faster in each, 3% on average).
- Over TLS, Python's ssl hands out one record (16 KiB at most) per read: the records already readable (ssl's pending
  bytes, or a zero-timeout select) are gathered into one read (256 MiB over https from a local Hub, one connection:
  1.75-1.84 s -> 1.30-1.46 s, user CPU 1.4 -> 1.0 s). Gathering waits at most `GATHER_WAIT` for the rest of a record
  on its way, so the stall timeout stays the next read's; a failure while gathering returns what came, and the next
  read meets it again.
"""

from __future__ import annotations

import select
from typing import Any

import httpcore2

READ_SIZE = 1 << 20
FIRST_READ = 64 << 10  # a read asks for twice what the last one asked while the socket fills them, else half
GATHER_WAIT = 0.05  # seconds a TLS read waits for the rest of a record it is gathering


def next_read(asked: int, got: int) -> int:
    """What the next read of a connection asks for, after one that asked `asked` bytes and got `got`."""
    return min(asked * 2, READ_SIZE) if got >= asked else max(asked // 2, FIRST_READ)


class BigReads(httpcore2.NetworkStream):
    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self._stream = stream
        self._size = FIRST_READ

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._stream.read(max(max_bytes, self._size), timeout)
        self._size = next_read(self._size, len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return TLSReads(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class TLSReads(BigReads):
    """A TLS stream: the records already readable are gathered into one read, up to what it asks for."""

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        want = max(max_bytes, self._size)
        data = self._stream.read(want, timeout)
        if data and len(data) < want:
            data = self._gather(data, want, timeout)
        self._size = next_read(self._size, len(data))
        return data

    def _gather(self, first: bytes, want: int, timeout: float | None) -> bytes:
        sock = self._stream.get_extra_info("socket")
        wait = GATHER_WAIT if timeout is None else min(timeout, GATHER_WAIT)
        parts, got = [first], len(first)
        try:
            while got < want and (sock.pending() or select.select([sock], [], [], 0)[0]):
                more = self._stream.read(want - got, wait)
                if not more:
                    break
                parts.append(more)
                got += len(more)
        except (httpcore2.ReadError, httpcore2.ReadTimeout, OSError, ValueError):
            pass  # what came is returned; the next read meets the failure again
        return b"".join(parts) if len(parts) > 1 else first


class Backend(httpcore2.SyncBackend):
    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore2.NetworkStream:
        return BigReads(super().connect_tcp(*args, **kwargs))

"""`hfget serve` run as a real process for the tests: started on a free port, its stderr collected line by line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from waiting import finish, wait_until


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self, contains: str = "") -> list[str]:
        return [line for line in list(self.lines) if contains in line and line.startswith("hfget serve: ")]

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a service manager stops it; the exit code and the last line (the summary)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:  # the reader first: `finish` reads the same pipe and closes it, taking the last lines from the reader
            wait_until(lambda: self._reader_done.is_set(), "the end of hfget serve's stderr")
        finally:
            finish(self.proc, "hfget serve after SIGTERM")
        return self.proc.returncode, self.lines[-1] if self.lines else ""

    _reader_done: threading.Event = field(default_factory=threading.Event)


def start_serve(cache_dir: Path, *args: str, env: dict[str, str] | None = None) -> ServeProcess:
    command = [sys.executable, "-m", "hfget", "serve", "--port", "0", "--cache-dir", str(cache_dir), *args]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            text=True, env={**os.environ, **(env or {})})
    assert proc.stderr is not None
    first = proc.stderr.readline()
    match = re.search(r"at (http://\S+) ", first)
    if match is None:
        proc.kill()
        raise AssertionError(f"hfget serve did not start: {first}{proc.stderr.read()}")
    served = ServeProcess(proc, match.group(1), [first.rstrip("\n")])

    def read() -> None:
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                served.lines.append(line.rstrip("\n"))
        except ValueError:  # the pipe was closed under the reader (by `finish`): the lines so far are all
            pass
        finally:
            served._reader_done.set()

    threading.Thread(target=read, daemon=True).start()
    return served

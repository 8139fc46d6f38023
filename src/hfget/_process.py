"""Whether hfget owns its process: the CLI does (`hfget ...`, `hfget serve`); a program calling hfget's Python API
does not, and keeps its own settings.

Only in a process it owns does hfget change what the whole process shares: the C allocator's arenas and the
garbage collector's settings (_memory.py), and the client huggingface_hub's shared session is built with, which
then lists files over the connections of hfget's own metadata client (_network.use_for_metadata).
"""

from __future__ import annotations

_owner = False


def own() -> None:
    """The caller owns the process (the CLI, before anything else runs)."""
    global _owner
    _owner = True


def owned() -> bool:
    return _owner


def interrupt_on_sigterm() -> None:
    """SIGTERM (CI cancelling a job, `kill`, hfget stopping its helper) stops like Ctrl-C: partials kept, exit 130."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use)
        pass

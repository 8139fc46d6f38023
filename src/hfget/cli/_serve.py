"""`hfget serve`: the HF cache as a Hub endpoint for a team (the server is hfget.serve, imported only here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import CacheDirOpt, DebugOpt, EndpointOpt, MirrorOpt, _errors_to_exit_codes

EPILOG = """\
Examples:

  hfget serve --mirror hf-mirror.com                 # then: HF_ENDPOINT=http://127.0.0.1:8080 python train.py

  hfget serve --host 0.0.0.0 --token-file team.tokens --cache-dir /srv/hf

  hfget serve --offline                              # only what the cache holds
"""


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback is "
                                      "reachable from other machines.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 picks a free one, printed).")] = 8080,
    mirror: MirrorOpt = None,
    endpoint: EndpointOpt = None,
    cache_dir: CacheDirOpt = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never ask upstream: serve what the cache "
                                          "holds, 404 for the rest.")] = False,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="Clients must send one of these "
                                                       "tokens (one a line) as a Bearer token.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the HF cache, read-only, as a Hub endpoint (HF_ENDPOINT=http://HOST:PORT); misses are fetched from
    upstream once, verified, and streamed as they arrive. Needs `pip install 'hfget[serve]'`."""
    from .._memory import usual_collection
    from ._render import QuietSink

    usual_collection()  # it runs for days (see _memory.py)
    with _errors_to_exit_codes(debug, QuietSink()):
        _serve(host, port, mirror, endpoint, cache_dir, offline, token_file)


def _serve(host: str, port: int, mirror: Optional[list[str]], endpoint: Optional[str], cache_dir: Optional[Path],
           offline: bool, token_file: Optional[Path]) -> None:
    from huggingface_hub import constants

    from .._errors import UsageError
    from .._options import Options

    try:
        from ..serve import ServeConfig, read_tokens, serve
    except ImportError as error:
        raise UsageError(f"hfget serve needs its extra ({error.name} is missing).",
                         hint="pip install 'hfget[serve]'") from None
    options = Options.build({"mirror": tuple(mirror or ()) or None, "endpoint": endpoint}, caller="flag")
    folder = Path(cache_dir or constants.HF_HUB_CACHE).expanduser().absolute()
    options = dataclasses.replace(options, cache_dir=folder, offline=False)
    tokens = read_tokens(token_file) if token_file is not None else frozenset()
    serve(ServeConfig(cache_dir=folder, options=options, host=host, port=port,
                      offline=offline or constants.is_offline_mode(), tokens=tokens))

"""`hfget serve`: the HF cache as a Hub endpoint, read-only, filling itself from upstream through hfget's engine.

    HF_ENDPOINT=http://cache-host:8080 python train.py

    _routes.py   the Hub routes answered, parsed from the raw path and validated (nothing outside the cache)
    _source.py   answers from the cache, else upstream: branches, listings, blobs
    _fetch.py    a miss: fetched once per blob by the engine, streamed to every client as the partial fills
    _app.py      the handlers (Starlette)
    _gate.py     the token check and the one log line per request (ASGI middleware)
    _server.py   binding, uvicorn, the summary at SIGINT/SIGTERM

Why Starlette and uvicorn: the server streams many large bodies at once while engine threads fill them, which
is an event loop's job (one thread per client would also do, but not with readers that wait on a shared partial
without polling). Starlette is the small, typed, well-kept ASGI toolkit under FastAPI (no validation layer or
OpenAPI this server would not use); uvicorn is its reference server and handles SIGINT/SIGTERM with a graceful
shutdown. Both are an optional extra (`pip install 'hfget[serve]'`), imported only by this package, which only
the `serve` command imports.
"""

from ._server import ServeConfig, read_tokens, serve

__all__ = ["ServeConfig", "read_tokens", "serve"]

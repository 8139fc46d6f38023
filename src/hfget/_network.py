"""How hfget reaches the network: the proxy and the TLS trust, shared by its own client and huggingface_hub's.

    --proxy URL  >  HFGET_PROXY  >  proxy = in the config file  >  HTTPS_PROXY / HTTP_PROXY / ALL_PROXY + NO_PROXY
    --ca-bundle  >  HFGET_CA_BUNDLE  >  ca_bundle =  >  SSL_CERT_FILE > REQUESTS_CA_BUNDLE > CURL_CA_BUNDLE > system

A proxy that is set (by any of the first three) carries every request, metadata and file bodies, the CDN included;
without one, httpx2 reads the usual variables itself (`trust_env`), NO_PROXY included. `socks5://` and
`socks5h://` proxies need the `socksio` package (`pip install hfget[socks]`).

The listing goes through huggingface_hub's one shared session (its `paginate` takes no client), so when a proxy
or a CA bundle is set, `use_for_metadata` installs a client factory with them through huggingface_hub's public
`set_client_factory`: the same client huggingface_hub builds by default, plus the proxy and the trust. That factory
serves the whole process; a later run without them puts huggingface_hub's default factory back.
In a process hfget owns (the CLI, _process.py) the factory is installed whatever the network, and where hfget's
metadata client goes direct (no proxy) the session is built on that client's connections (_hub_http.lend): the
listing follows the revision lookup on its kept-alive connection, where a session of its own opened a second one
(a TCP and a TLS handshake, two round trips to a mirror on every run that lists) and loaded the CA store a second
time (~25 ms). A program calling the Python API keeps huggingface_hub's session as it set it up.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._compat import hub_default_client_factory, hub_request_event_hook
from ._errors import NetworkError, UsageError
from ._options import Options
from ._process import owned
from ._version import __version__

if TYPE_CHECKING:
    import ssl

    import httpx2

# every request hfget sends itself (metadata and file bodies): who asks, and no compressed bodies (a byte count and a
# hash over what the server holds; hub-protocol.md §3)
HEADERS = {"User-Agent": f"hfget/{__version__}", "Accept-Encoding": "identity"}

# SSL_CERT_FILE (and SSL_CERT_DIR) httpx2 reads itself; these two it does not (requests and curl do)
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _environment_trust() -> tuple[str, str]:
    return os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", "")


@dataclass(frozen=True)
class Network:
    """The proxy (None: the environment's) and the CA bundle (None: the system's) of a run. `trusted` holds
    SSL_CERT_FILE and SSL_CERT_DIR as they were (httpx2 reads them itself), so that hfget's own clients and TLS
    context, kept for the process by network, follow a change of them. (huggingface_hub's session, which lists
    files on the default network, keeps the trust it was built with until it is rebuilt.)"""

    proxy: str | None = field(default=None, repr=False)  # may hold credentials: never shown
    ca_bundle: Path | None = None
    ca_origin: str = "--ca-bundle"
    trusted: tuple[str, str] = field(default_factory=_environment_trust)

    @classmethod
    def from_options(cls, options: Options) -> Network:
        if options.proxy and options.proxy.startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise UsageError("A socks5:// proxy needs the socksio package.", hint="pip install 'hfget[socks]'")
        if options.ca_bundle is not None:
            return cls(options.proxy, options.ca_bundle, _ca_label(options))
        if os.environ.get("SSL_CERT_FILE"):
            return cls(options.proxy)  # httpx2's default trust reads it
        for variable in CA_VARIABLES:
            value = os.environ.get(variable)
            if value:
                return cls(options.proxy, Path(value).expanduser(), variable)
        return cls(options.proxy)

    @property
    def is_default(self) -> bool:
        return self.proxy is None and self.ca_bundle is None

    def client_arguments(self) -> dict[str, Any]:
        """What an `httpx2.Client` takes for this network: the proxy, and what it verifies certificates with."""
        return {"proxy": self.proxy, "verify": self.verify(), "trust_env": True}

    def verify(self) -> ssl.SSLContext | bool:
        if self.ca_bundle is None:
            return True  # httpx2's default trust (the system's, or SSL_CERT_DIR)
        return _context(self.ca_bundle, self.ca_origin)


@functools.cache
def tls_context(network: Network) -> ssl.SSLContext:
    """The network's trust as one TLS context for the process: the revision lookup's client and every download
    client share it (loading a CA store costs tens of milliseconds, each time it is built)."""
    import httpx2

    return httpx2.create_ssl_context(verify=network.verify(), trust_env=True)


def environment_proxies() -> bool:
    """Whether HTTP(S)_PROXY/ALL_PROXY apply (httpx2 honours them only with its own transports). Read as urllib's
    `getproxies_environment` reads them (importing urllib.request for it costs a run that asks one question a tenth
    of its time): any case, a lower-case name set empty unsets it, HTTP_PROXY is ignored in a CGI request."""
    proxies: dict[str, str] = {}
    for name, value in os.environ.items():
        if value and name.lower().endswith("_proxy"):
            proxies[name.lower()[:-6]] = value
    if "REQUEST_METHOD" in os.environ:
        proxies.pop("http", None)
    for name, value in os.environ.items():
        if name.endswith("_proxy"):
            if value:
                proxies[name.lower()[:-6]] = value
            else:
                proxies.pop(name.lower()[:-6], None)
    return any(scheme in proxies for scheme in ("http", "https", "all"))


_contexts: dict[Path, ssl.SSLContext] = {}
_lock = threading.RLock()  # held by use_for_metadata while it builds the context


def _context(path: Path, origin: str) -> ssl.SSLContext:
    import ssl

    with _lock:
        if path not in _contexts:
            try:
                _contexts[path] = ssl.create_default_context(cafile=str(path))
            except (OSError, ssl.SSLError) as error:
                raise UsageError(f"Cannot use the CA bundle {path} (from {origin}): {error}.",
                                 hint="Give a PEM file of the certificates to trust.") from None
        return _contexts[path]


def _ca_label(options: Options) -> str:
    origin = options.origins.get("ca_bundle", "explicit")
    return {"environment": "HFGET_CA_BUNDLE", "config file": "ca_bundle in the config file"}.get(origin, "--ca-bundle")


_installed: tuple[Network, bool] | None = None  # the network and whether the session is lent hfget's connections


def use_for_metadata(network: Network) -> None:
    """Give huggingface_hub's shared session this network's proxy and trust (see the module's docstring)."""
    global _installed
    from huggingface_hub import set_client_factory

    shared = owned()  # the session may be built on hfget's own connections
    with _lock:
        if (network, shared) == _installed or (network.is_default and not shared and _installed is None):
            return
        if network.is_default and not shared:
            set_client_factory(hub_default_client_factory())
        else:
            arguments = network.client_arguments()  # a CA bundle that cannot be read is a usage error here
            set_client_factory(lambda: _hub_client(arguments, network if shared else None))
        _installed = None if network.is_default and not shared else (network, shared)


def _hub_client(arguments: dict[str, Any], lender: Network | None = None) -> httpx2.Client:
    """huggingface_hub's default client (its `default_client_factory`), with a proxy and a trust; or, from a
    `lender`, on the connections of hfget's metadata client for it where that goes direct. It carries hfget's
    scoped hooks from the start (they act only within hfget's own calls): huggingface_hub closes its session after
    a connect error and builds a new one for the retry, mid-listing, which the hooks `session_scope` adds to the
    session it found would not be on (the next pages would follow a link naming another host, token and all)."""
    import httpx2

    from ._hub_http import lend, scoped_hooks

    if lender is not None:
        transport = lend(lender)
        if transport is not None:
            arguments = {"transport": transport}
    hooks = scoped_hooks()
    return httpx2.Client(event_hooks={"request": [hub_request_event_hook(), *hooks["request"]],
                                      "response": hooks["response"]}, follow_redirects=True, timeout=None,
                         **arguments)


def untrusted_certificate(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind a connect error, if that is what it is (httpx2 chains httpcore2's error,
    which chains the ssl module's)."""
    import ssl

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def certificate_error(failure: ssl.SSLCertVerificationError, host: str) -> NetworkError:
    reason = failure.verify_message or failure.reason or "verification failed"
    return NetworkError(f"The TLS certificate of {host} is not trusted ({reason}).",
                        hint="Pass the CA that signed it with --ca-bundle FILE (or HFGET_CA_BUNDLE, SSL_CERT_FILE).")

"""Proxies, TLS trust, endpoints behind a path prefix, slow first bytes and hostile redirects, through the real CLI.

Every server is real and on 127.0.0.1: the test Hub (over TLS with certificates trustme makes, where a test says
so), pproxy as the forward proxy (http and socks5), and a prefix-stripping reverse proxy (tests/proxies.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hub import Fault, Hub
from proxies import ForwardProxy, PrefixProxy

TOKEN = "hf_network_test_token_0123456789"
FILES = {"config.json": b'{"a": 1}', "sub/notes.txt": b"notes " * 100, "model.safetensors": os.urandom(300_000)}
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy")


@pytest.fixture(autouse=True)
def no_inherited_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own CA and proxy variables do not reach these tests unless a test sets them."""
    for name in CA_VARIABLES + PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def tls_hub(ca: trustme.CA, tmp_path: Path) -> Iterator[Hub]:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    server = Hub(tmp_path / "tls-hub-data", page_size=2, tls=context).start()
    yield server
    server.stop()


def _repo(hub: Hub) -> None:
    hub.create_repo("org/model", FILES)
    hub.grant("org/model", TOKEN)


def _check_files(stdout: str) -> None:
    folder = Path(stdout.strip().splitlines()[-1])
    for path, content in FILES.items():
        assert (folder / path).read_bytes() == content, path


def _connections(hub: Hub, origin: str) -> int:
    """TCP connections the Hub accepted on one origin (each request records its peer's address and port)."""
    return len({served.peer for served in hub.requests(origin=origin)})


def _through(proxy: ForwardProxy, hub: Hub) -> None:
    """Every connection the Hub and its CDN accepted was one the proxy opened (and the proxy opened no other)."""
    assert hub.requests(origin="hub") and hub.requests(origin="cdn")
    assert proxy.connections(hub.url) == _connections(hub, "hub")
    assert proxy.connections(hub.cdn_url) == _connections(hub, "cdn")


# -- A. proxies and TLS ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h"])
def test_every_request_goes_through_the_proxy_given(hub: Hub, forward_proxy: ForwardProxy, run_hfget, scheme: str):
    _repo(hub)
    result = run_hfget("org/model", "--endpoint", hub.url, "--proxy", forward_proxy.url(scheme), "--token", TOKEN)
    assert result.returncode == 0, result.stderr
    _check_files(result.stdout)
    _through(forward_proxy, hub)  # metadata (huggingface_hub's session), resolve and CDN bodies alike
    assert all(s.authorized for s in hub.requests(origin="hub"))
    assert not any(s.authorized for s in hub.requests(origin="cdn"))  # a plain-http proxy sees it: never sent
    assert forward_proxy.password not in result.stdout + result.stderr and TOKEN not in result.stderr


def test_https_through_connect_with_a_private_ca_and_the_token_kept_from_the_cdn(
        tls_hub: Hub, forward_proxy: ForwardProxy, ca_file: Path, run_hfget):
    """The Hub speaks TLS with a certificate only the private CA vouches for, so a verified answer through the
    proxy means a CONNECT tunnel end to end: the proxy cannot read or forge it."""
    _repo(tls_hub)
    result = run_hfget("org/model", "--endpoint", tls_hub.url, "--proxy", forward_proxy.url(), "--ca-bundle",
                       str(ca_file), "--token", TOKEN)
    assert result.returncode == 0, result.stderr
    _check_files(result.stdout)
    _through(forward_proxy, tls_hub)
    assert all(s.authorized for s in tls_hub.requests(origin="hub"))
    assert not any(s.authorized for s in tls_hub.requests(origin="cdn"))
    assert TOKEN not in result.stdout + result.stderr


def test_an_untrusted_certificate_is_exit_5_with_one_line_naming_the_host_and_ca_bundle(tls_hub: Hub, run_hfget):
    _repo(tls_hub)
    result = run_hfget("org/model", "--endpoint", tls_hub.url)
    assert result.returncode == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "certificate of 127.0.0.1 is not trusted" in lines[0] and "--ca-bundle" in lines[0]
    assert not tls_hub.requests()  # refused at the handshake: nothing was asked


@pytest.mark.parametrize("over", ["https with a private CA", "plain http"])
def test_the_file_list_follows_the_revision_lookup_on_its_connection(
        request: pytest.FixtureRequest, ca_file: Path, run_hfget, over: str):
    """The CLI asks for the commit and then for every page of the file list over one kept-alive connection:
    the listing on huggingface_hub's own session opened a second one (a TCP and a TLS handshake: two round trips
    to a mirror on every run that lists, and the CA store loaded twice)."""
    tls = over.startswith("https")
    hub: Hub = request.getfixturevalue("tls_hub" if tls else "hub")
    _repo(hub)
    trust = ["--ca-bundle", str(ca_file)] if tls else []
    result = run_hfget("org/model", "--endpoint", hub.url, *trust, "--token", TOKEN)
    assert result.returncode == 0, result.stderr
    _check_files(result.stdout)
    hub.wait_idle()  # the last answer reached hfget before its log entry was written
    metadata = [s for s in hub.requests(origin="hub") if "/revision/" in s.path or "/tree/" in s.path]
    assert "/revision/" in metadata[0].path and len(metadata) >= 2, metadata
    assert all(s.authorized for s in metadata)
    assert len({s.peer for s in metadata}) == 1, [(s.path, s.peer) for s in metadata]


@pytest.mark.parametrize("caller", ["the hfget command", "a program using the Python API"])
def test_a_session_rebuilt_mid_listing_keeps_the_pages_and_the_token_on_the_endpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caller: str):
    """huggingface_hub closes its session after a connect error and builds another for the retry, mid-listing. The
    next pages, whose links name another host (as hf-mirror's name huggingface.co), still go to the endpoint where
    hfget built the session (the CLI); where the program keeps huggingface_hub's own session (the Python API), the
    rebuilt one lacks hfget's hooks, but the token never reaches the other host: only the hooks add it. (The session
    is closed here as huggingface_hub's backoff closes it, after page one.)"""
    import huggingface_hub

    import hfget
    from hfget import _compat, _process

    elsewhere = Hub(tmp_path / "elsewhere").start()
    mirror = Hub(tmp_path / "mirror", page_size=2, link_base=elsewhere.url).start()
    try:
        mirror.create_repo("org/model", FILES)
        mirror.grant("org/model", TOKEN)
        monkeypatch.setattr(_process, "_owner", caller == "the hfget command")
        paginate = _compat.hub_paginate()

        def session_closed_after_the_first_entry(*args: object, **kwargs: object) -> Iterator[object]:
            for index, entry in enumerate(paginate(*args, **kwargs)):
                if index == 0:
                    huggingface_hub.close_session()
                yield entry

        monkeypatch.setattr(_compat, "hub_paginate", lambda: session_closed_after_the_first_entry)
        if caller == "the hfget command":
            path = hfget.download("org/model", endpoint=mirror.url, token=TOKEN, cache_dir=tmp_path / "cache")
            assert (path / "model.safetensors").read_bytes() == FILES["model.safetensors"]
            mirror.wait_idle()
            elsewhere.wait_idle()
            assert len(mirror.requests(contains="/tree/")) >= 2 and elsewhere.log == []
        else:
            with pytest.raises(hfget.HfgetError):  # the other host has no such repo
                hfget.download("org/model", endpoint=mirror.url, token=TOKEN, cache_dir=tmp_path / "cache")
            elsewhere.wait_idle()  # its answer reached hfget before its log entry was written
            assert elsewhere.requests(contains="/tree/") and not any(s.authorized for s in elsewhere.log)
    finally:
        mirror.stop()
        elsewhere.stop()


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HFGET_CA_BUNDLE"])
def test_the_ca_bundle_variables_are_honoured(tls_hub: Hub, ca_file: Path, run_hfget, variable: str):
    _repo(tls_hub)
    result = run_hfget("org/model", "--endpoint", tls_hub.url, env={variable: str(ca_file)})
    assert result.returncode == 0, result.stderr
    _check_files(result.stdout)


def test_a_cdn_with_an_untrusted_certificate_stops_the_run_with_exit_5(
        hub: Hub, tls_hub: Hub, run_hfget):
    """The Hub is trusted (plain http here); its LFS redirect goes to a TLS CDN nobody vouched for."""
    _repo(hub)
    _repo(tls_hub)
    hub.cdn_location = lambda blob, path: tls_hub.cdn_location(blob, path)  # type: ignore[method-assign]
    result = run_hfget("org/model", "--endpoint", hub.url, "--retries", "3", "-q")
    assert result.returncode == 5
    assert result.stderr.count("\n") == 1 and "--ca-bundle" in result.stderr
    assert not tls_hub.requests(origin="cdn")


def test_the_proxy_variables_apply_without_the_flag_and_no_proxy_is_respected(
        hub: Hub, forward_proxy: ForwardProxy, run_hfget, tmp_path: Path):
    _repo(hub)
    result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path / "a"),
                       env={"HTTP_PROXY": forward_proxy.url()})
    assert result.returncode == 0, result.stderr
    _through(forward_proxy, hub)
    used = len(forward_proxy.lines)
    hub.clear_log()
    result = run_hfget("org/model", "--endpoint", hub.url, "--cache-dir", str(tmp_path / "b"),
                       env={"HTTP_PROXY": forward_proxy.url(), "NO_PROXY": "127.0.0.1"})
    assert result.returncode == 0, result.stderr
    _check_files(result.stdout)
    assert hub.requests(origin="cdn") and len(forward_proxy.lines) == used  # straight to the Hub this time


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_wrong_proxy_credentials_are_named_as_the_proxys_without_showing_them(
        hub: Hub, forward_proxy: ForwardProxy, run_hfget, scheme: str):
    _repo(hub)
    proxy = f"{scheme}://{forward_proxy.user}:wrong-pass-123@127.0.0.1:{forward_proxy.port}"
    result = run_hfget("org/model", "--endpoint", hub.url, "--proxy", proxy)
    assert result.returncode == 5
    assert f"The proxy {scheme}://***@127.0.0.1:{forward_proxy.port} refused the credentials" in result.stderr
    assert "wrong-pass-123" not in result.stderr and not hub.requests()


def test_config_shows_the_proxy_without_its_credentials(run_hfget, tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text('proxy = "http://alice:hunter2-secret@proxy.example:3128"\nfirst_byte_timeout = 600\n')
    result = run_hfget("config", env={"HFGET_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert "proxy = http://***@proxy.example:3128" in result.stdout
    assert "first_byte_timeout = 600" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr and "alice" not in result.stdout
    result = run_hfget("org/model", "--proxy", "ftp://alice:hunter2-secret@proxy.example:21")
    assert result.returncode == 2 and "--proxy" in result.stderr
    assert "hunter2" not in result.stderr


# -- B. endpoints with a path prefix, first bytes, redirects ---------------------------------------------------------

@pytest.mark.parametrize("prefix", ["/artifactory/api/huggingfaceml/models-remote", "/repository/hf-proxy"])
def test_an_endpoint_behind_a_path_prefix_keeps_it_everywhere(hub: Hub, run_hfget, prefix: str):
    """The reverse proxy passes the Hub's own next-page links (naming the Hub, not the prefix) and relative
    `Location: /api/resolve-cache/...` redirects on as they are: hfget keeps the prefix on both."""
    _repo(hub)
    hub.resolve_cache_redirect = True
    front = PrefixProxy(hub.url, prefix)
    try:
        result = run_hfget("org/model", "--endpoint", front.url, "--token", TOKEN)
    finally:
        front.stop()
    assert result.returncode == 0, result.stderr
    _check_files(result.stdout)
    assert all(path.startswith(prefix + "/") for path in front.log), front.log
    assert len(front.log) == len(hub.requests(origin="hub"))  # every Hub request came through the prefix
    assert len(hub.requests(contains="/tree/")) >= 2 and hub.requests(contains="/api/resolve-cache/")
    assert not any(s.authorized for s in hub.requests(origin="cdn"))


def test_a_slow_first_byte_is_not_a_stall_but_a_stalled_body_still_is(hub: Hub, run_hfget):
    """The answers to the small files begin later than --stall-timeout but within --first-byte-timeout: fetched
    at the first try. The large file's body stops mid-way: dropped after --stall-timeout and resumed."""
    _repo(hub)
    hub.faults += [Fault("slow", match="/resolve/", seconds=3, times=10),
                   Fault("stall", origin="cdn", after=100_000, seconds=600)]  # until released
    result = run_hfget("org/model", "--endpoint", hub.url, "--stall-timeout", "1", "--first-byte-timeout", "60",
                       "--json")
    assert result.returncode == 0, result.stderr
    _check_files(json.loads(result.stdout.splitlines()[-1])["path"])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    retries = [e for e in events if e["event"] == "retry"]
    assert [e["path"] for e in retries] == ["model.safetensors"] and "stalled" in retries[0]["reason"]
    waiting = [e for e in events if e["event"] == "waiting"]
    assert waiting and all(e["host"] == "127.0.0.1" for e in waiting)
    assert len(hub.requests(contains="/resolve/")) == len(FILES)  # each resolve asked once


@pytest.mark.parametrize("how", ["flag", "HF_HUB_DOWNLOAD_TIMEOUT"])
def test_no_first_byte_within_the_timeout_fails_that_file(hub: Hub, run_hfget, how: str):
    _repo(hub)
    hub.faults.append(Fault("slow", match="notes.txt", seconds=600, times=10))  # until the Hub stops
    limit = ["--first-byte-timeout", "1"] if how == "flag" else []
    env = {"HF_HUB_DOWNLOAD_TIMEOUT": "1"} if how != "flag" else {}
    result = run_hfget("org/model", "--endpoint", hub.url, "--retries", "1", *limit, env=env)
    assert result.returncode == 1
    assert "sub/notes.txt" in result.stderr and "no answer from 127.0.0.1 within the --first-byte-timeout" \
        in result.stderr
    hub.release_stalls()
    hub.wait_idle()
    assert len(hub.requests(contains="notes.txt")) == 2  # the first try and one retry


def test_hf_hub_etag_timeout_limits_the_metadata_wait(hub: Hub, run_hfget):
    _repo(hub)
    hub.faults.append(Fault("slow", match="/revision/", seconds=600, times=10))
    result = run_hfget("org/model", "--endpoint", hub.url, "--retries", "0", env={"HF_HUB_ETAG_TIMEOUT": "1"})
    assert result.returncode == 5, result.stderr
    assert "did not answer in time" in result.stderr


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://files.example/model.safetensors"])
def test_a_redirect_to_anything_but_http_fails_that_file_at_once(hub: Hub, run_hfget, location: str):
    _repo(hub)
    hub.redirect_to = location
    result = run_hfget("org/model", "config.json", "--endpoint", hub.url)
    assert result.returncode == 1
    assert location in result.stderr and "not http(s)" in result.stderr
    assert len(hub.requests(contains="/resolve/")) == 1  # no retry


def test_no_referer_is_ever_sent(hub: Hub, run_hfget):
    _repo(hub)
    hub.resolve_cache_redirect = True
    result = run_hfget("org/model", "--endpoint", hub.url, "--token", TOKEN)
    assert result.returncode == 0, result.stderr
    assert hub.requests(origin="cdn") and hub.requests(contains="/api/resolve-cache/")
    assert not [s for s in hub.requests() if "referer" in s.headers]


def test_the_python_api_takes_a_proxy_and_a_later_run_without_one_goes_direct(
        hub: Hub, forward_proxy: ForwardProxy, tmp_path: Path):
    """huggingface_hub's shared session gets the proxy for one run and its own factory back for the next."""
    import hfget

    _repo(hub)
    hfget.download("org/model", endpoint=hub.url, proxy=forward_proxy.url(), cache_dir=tmp_path / "a")
    _through(forward_proxy, hub)
    used = len(forward_proxy.lines)
    hub.clear_log()
    path = hfget.download("org/model", endpoint=hub.url, cache_dir=tmp_path / "b")
    assert (path / "config.json").read_bytes() == FILES["config.json"]
    assert hub.requests(contains="/revision/") and len(forward_proxy.lines) == used


def test_the_trust_is_loaded_once_for_the_process_and_again_when_ssl_cert_file_changes(
        tls_hub: Hub, ca_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Loading a CA store costs tens of milliseconds: hfget's revision lookup and its download clients share one
    TLS context, kept while the trust is the same; a program that then points SSL_CERT_FILE elsewhere gets that."""
    import ssl

    import hfget
    from hfget import NetworkError
    from hfget._network import tls_context

    tls_context.cache_clear()
    loads: list[str] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, cafile: str | None = None, capath: str | None = None,
                cadata: str | bytes | None = None) -> None:
        if cafile is not None and Path(cafile) == ca_file:
            loads.append(cafile)
        load(self, cafile, capath, cadata)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    _repo(tls_hub)
    tls_hub.create_repo("org/other", {"model.safetensors": os.urandom(300_000)})
    first = hfget.download("org/model", endpoint=tls_hub.url, cache_dir=tmp_path / "c")
    hfget.download("org/other", endpoint=tls_hub.url, cache_dir=tmp_path / "c")
    assert (first / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert tls_context.cache_info().misses == 1  # one context for the lookups and downloads of both runs
    assert 1 <= len(loads) <= 2  # that one, and huggingface_hub's session's for the listing (if not built yet)
    stranger = trustme.CA()
    other_ca = tmp_path / "other-ca.pem"
    stranger.cert_pem.write_to_path(str(other_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    with pytest.raises(NetworkError, match="not trusted"):
        hfget.download("org/model", endpoint=tls_hub.url, cache_dir=tmp_path / "d")


def test_over_tls_the_records_already_there_are_read_as_one_block_and_a_large_file_arrives_whole(
        tls_hub: Hub, ca_file: Path, run_hfget):
    """Python's ssl returns one TLS record (16 KiB at most) a read; hfget's client gathers those already readable,
    so each pass through h11 and httpcore2 carries more (measured: 256 MiB over https, 1.8 s -> 1.4 s)."""
    import httpx2

    from hfget._exchange import make_client
    from hfget._network import Network

    big = os.urandom(24 << 20)
    tls_hub.create_repo("org/big", {"model.safetensors": big})
    url = f"{tls_hub.url}/org/big/resolve/main/model.safetensors"
    network = Network(ca_bundle=ca_file)
    with make_client(connections=1, stall_timeout=30, network=network) as client, \
            client.stream("GET", url, follow_redirects=True) as response:
        chunks = list(response.iter_raw())
    assert b"".join(chunks) == big and max(len(c) for c in chunks) > 16 << 10
    with httpx2.Client(verify=network.verify()) as plain, \
            plain.stream("GET", url, follow_redirects=True) as response:
        assert max(len(c) for c in response.iter_raw()) <= 16 << 10  # one record a read
    result = run_hfget("org/big", "--endpoint", tls_hub.url, "--ca-bundle", str(ca_file), "-c", "4", "-q")
    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "model.safetensors").read_bytes() == big


@pytest.mark.parametrize(("endpoint", "url", "expected"), [
    ("https://h/p/q", "https://h/api/x?c=1", "https://h/p/q/api/x?c=1"),
    ("https://h/p/q", "https://h/p/q/api/x", "https://h/p/q/api/x"),
    ("https://h/p/q", "https://cdn.example/api/x", "https://cdn.example/api/x"),
    ("https://h", "https://h/api/x", "https://h/api/x"),
    ("https://h/p", "https://h/pq/api", "https://h/p/pq/api"),
])
def test_keep_prefix(endpoint: str, url: str, expected: str):
    from hfget._repo import keep_prefix

    assert keep_prefix(endpoint, url) == expected


def test_proxy_credentials_are_masked():
    from hfget._options import mask_url

    assert mask_url("socks5h://user:p@ss:word@proxy.example:1080") == "socks5h://***@proxy.example:1080"
    assert mask_url("http://proxy.example:3128") == "http://proxy.example:3128"

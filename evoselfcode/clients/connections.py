"""The wire to one server: how the environment says to reach it, and the connections requests go over.

What the environment says is the proxy, the CA bundle and ~/.netrc; there are `concurrency` connections, each one
an in-flight slot.

Without a proxy the connections are urllib3's own keep-alive `HTTPConnection`s, used without urllib3's pool:
its per-request bookkeeping (Timeout copies, a queue of Python-level Conditions, URL parsing) cost ~0.1 of
~0.5 ms per request at 64 threads (bench/README.md). Through a proxy (CONNECT tunnels, SOCKS, proxy
credentials) or with an injected pool, each slot is a share of a urllib3 pool, which does that part.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import netrc
import os
import queue
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import urllib3
import urllib3.connection
from urllib3.util.ssl_match_hostname import CertificateError

# Everything urllib3 may raise for a request that got no usable answer; errors.translate_request_exception maps them.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
# `retries=False` as an object: urllib3 would build this from the bool on every request
_NO_RETRIES = urllib3.Retry(total=False, redirect=False)
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@dataclass(frozen=True)
class Environment:
    """What the environment says about reaching one base URL, read once per Transport, not per request."""

    proxy: str | None = None
    ca_certs: str | None = None
    ca_cert_dir: str | None = None
    netrc_auth: tuple[str, str] | None = None

    @classmethod
    def read(cls, base_url: str) -> Environment:
        """Proxy (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY unless NO_PROXY matches), CA bundle (REQUESTS_CA_BUNDLE,
        CURL_CA_BUNDLE, SSL_CERT_FILE, else certifi's if installed, else the system's) and ~/.netrc (or $NETRC)."""
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        proxies = urllib.request.getproxies()
        proxy = proxies.get(parts.scheme) or proxies.get("all")
        if proxy and urllib.request.proxy_bypass(parts.netloc.rsplit("@", 1)[-1]):
            proxy = None
        ca_certs = ca_cert_dir = None
        if parts.scheme == "https":
            bundle = next(filter(None, map(os.environ.get, _CA_BUNDLE_VARIABLES)), None) or _certifi_bundle()
            if bundle and os.path.isdir(bundle):
                ca_cert_dir = bundle
            else:
                ca_certs = bundle
        return cls(proxy, ca_certs, ca_cert_dir, _netrc_auth(host))


def _certifi_bundle() -> str | None:
    try:
        import certifi  # the bundle requests used; without it urllib3 falls back to the system's
    except ImportError:
        return None
    return certifi.where()


def _netrc_auth(host: str) -> tuple[str, str] | None:
    candidates = [os.environ["NETRC"]] if os.environ.get("NETRC") else ["~/.netrc", "~/_netrc"]
    for name in candidates:
        path = Path(name).expanduser()
        if not path.is_file():
            continue
        try:
            found = netrc.netrc(path).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            return None
        if found:
            login, account, password = found
            return (login or account or "", password or "")
        return None
    return None


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def make_pool(base_url: str, concurrency: int, env: Environment | None = None) -> urllib3.PoolManager:
    """Connections to `base_url`: at most `concurrency`, kept alive; urllib3 retries and redirects nothing
    (retries are ours and counted; a POST must never be resent behind our back)."""
    env = env or Environment.read(base_url)
    options: dict[str, Any] = {"num_pools": 2, "maxsize": concurrency, "block": True, "retries": _NO_RETRIES}
    if env.ca_certs or env.ca_cert_dir:
        options.update(ca_certs=env.ca_certs, ca_cert_dir=env.ca_cert_dir)
    if not env.proxy:
        return urllib3.PoolManager(**options)
    proxy = urlsplit(env.proxy if "://" in env.proxy else "http://" + env.proxy)
    if proxy.scheme.startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as requests did

        return SOCKSProxyManager(proxy.geturl(), **options)
    headers = None
    if proxy.username:
        headers = {"Proxy-Authorization": basic_auth(unquote(proxy.username), unquote(proxy.password or ""))}
        proxy = proxy._replace(netloc=proxy.netloc.rsplit("@", 1)[1])
    return urllib3.ProxyManager(urlunsplit(proxy), proxy_headers=headers, **options)


class Line(Protocol):
    """What one in-flight slot holds: a way to exchange one request for its whole answer."""

    def exchange(self, method: str, target: str, body: bytes | None, headers: dict) -> urllib3.BaseHTTPResponse: ...

    def close(self) -> None: ...


class Connection:
    """One keep-alive urllib3 connection, opened when first used and again after a failure or an idle close."""

    def __init__(self, conn: urllib3.connection.HTTPConnection, timeout: tuple[float, float]):
        self._conn = conn
        self._connect, self._read = timeout

    def exchange(self, method: str, target: str, body: bytes | None, headers: dict) -> urllib3.BaseHTTPResponse:
        conn = self._conn
        if conn.sock is not None and not conn.is_connected:
            conn.close()  # the server closed it while it was idle
        if conn.sock is None:
            conn.timeout = self._connect
            try:
                conn.connect()
            except (ssl.SSLError, CertificateError) as exc:
                raise urllib3.exceptions.SSLError(exc) from exc
        conn.timeout = self._read
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it may have answered before closing
                conn.request(method, target, body=body, headers=headers)
            return conn.getresponse()
        except http.client.HTTPException as exc:  # e.g. not HTTP at all: what urllib3's pool raised for it
            raise urllib3.exceptions.ProtocolError("Connection aborted.", exc) from exc

    def close(self) -> None:
        self._conn.close()


class PoolShare:
    """A slot's share of a urllib3 pool, which opens, reuses and drops the connections itself."""

    def __init__(self, urlopen, timeout: tuple[float, float]):
        self._urlopen = urlopen
        self._options = {
            "retries": _NO_RETRIES,
            "redirect": False,
            "timeout": urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        }

    def exchange(self, method: str, target: str, body: bytes | None, headers: dict) -> urllib3.BaseHTTPResponse:
        return self._urlopen(method, target, body=body, headers=headers, **self._options)

    def close(self) -> None:
        pass  # the pool already dropped a connection whose exchange failed


class Connections:
    """`concurrency` lines to one base URL; holding one is holding an in-flight slot.

    `target` is the request-target of the base URL: its path, or the whole URL through an HTTP proxy.
    A queue of lines: its wait is in C, ~2 us a request where `threading.Semaphore`'s Condition costs ~25 us
    with many threads waiting.
    """

    def __init__(
        self,
        base_url: str,
        concurrency: int,
        env: Environment,
        timeout: tuple[float, float],
        pool: urllib3.PoolManager | None = None,
    ):
        parts = urlsplit(base_url)
        origin = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1], path=""))
        if pool is None and env.proxy:
            pool = make_pool(base_url, concurrency, env)
        self.pool = pool
        if pool is None:
            lines: list[Line] = [Connection(_new_connection(parts, env), timeout) for _ in range(concurrency)]
        elif isinstance(pool, urllib3.ProxyManager):
            lines = [PoolShare(pool.urlopen, timeout)] * concurrency  # one share, `concurrency` times: the slots
        else:
            # the one connection pool for this host, once: PoolManager.urlopen would look it up per request
            lines = [PoolShare(pool.connection_from_url(origin).urlopen, timeout)] * concurrency
        # what precedes a path in the request line: the proxy manager needs the absolute URL
        self._origin = origin if isinstance(pool, urllib3.ProxyManager) else ""
        self.target = self.target_of(parts.path)
        self._free: queue.SimpleQueue[Line] = queue.SimpleQueue()
        for line in lines:
            self._free.put(line)

    def target_of(self, path: str) -> str:
        """The request-target of `path` on the base URL's host."""
        return self._origin + quote(path, safe="/%:@!$&'()*+,;=~")  # a request line is ASCII

    @contextlib.contextmanager
    def slot(self) -> Iterator[Line]:
        line = self._free.get()
        try:
            yield line
        except BaseException:
            line.close()  # a failed exchange leaves the connection in an unknown state: the next one reconnects
            raise
        finally:
            self._free.put(line)

    def close(self) -> None:
        """Close the idle connections (a request still running keeps its own)."""
        idle = []
        while True:
            try:
                idle.append(self._free.get_nowait())
            except queue.Empty:
                break
        for line in idle:
            line.close()
            self._free.put(line)
        if self.pool is not None:
            self.pool.clear()


def _new_connection(parts, env: Environment) -> urllib3.connection.HTTPConnection:
    if parts.scheme == "https":
        return urllib3.connection.HTTPSConnection(
            parts.hostname or "", parts.port or 443, ca_certs=env.ca_certs, ca_cert_dir=env.ca_cert_dir
        )
    return urllib3.connection.HTTPConnection(parts.hostname or "", parts.port or 80)

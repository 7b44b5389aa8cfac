"""The Transport's connections: its own keep-alive ones (reuse, a bound of `concurrency`, idle closes, TLS) and
urllib3's through a proxy."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from evoselfcode.clients.errors import ConnectError
from evoselfcode.clients.transport import Transport, reset_shared_state
from evoselfcode.config import Api

ANSWER = json.dumps({"choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]}).encode()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, close_after_answer: bool = False, tls: ssl.SSLContext | None = None):
        self.close_after_answer = close_after_answer
        self.ports: list[int] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request, client_address):
        pass

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Server:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.lock:
            self.server.ports.append(self.client_address[1])

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)
        # a server's keep-alive timeout: the socket closes after the answer, without a `Connection: close`
        self.close_connection = self.server.close_after_answer

    def log_message(self, *args):
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    reset_shared_state()


def transport(url: str, concurrency: int) -> Transport:
    api = Api.model_validate({"model": "m", "max_retries": 2, "backoff": {"base": 0.01, "max": 0.02}})
    return Transport(api, url, concurrency=concurrency)


def post(t: Transport) -> dict:
    return t.post("/v1/completions", {"prompt": "def "}, lambda data: data, cost_tokens=1)[0]


def test_requests_share_at_most_concurrency_connections():
    with Server() as server:
        t = transport(server.url, concurrency=2)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(t), range(40)))
        assert all(a["choices"][0]["text"] == "ok" for a in answers)
        assert len(server.ports) <= 2 and t.stats.snapshot()["retries_total"] == 0


def test_a_connection_the_server_closed_while_idle_is_reopened_without_a_retry():
    with Server(close_after_answer=True) as server:
        t = transport(server.url, concurrency=1)
        for _ in range(3):
            post(t)
            time.sleep(0.05)  # the server's close reaches the client while the connection is idle
        assert len(server.ports) == 3 and t.stats.snapshot()["retries_total"] == 0


def test_a_base_url_path_outside_ascii_is_sent_percent_encoded():
    with Server() as server:
        post(transport(server.url + "/vé", concurrency=1))
        assert server.paths == ["/v%C3%A9/v1/completions"]


def test_an_answer_that_is_not_http_is_a_connect_error():
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer_garbage():
            for _ in range(3):  # the first try and its two retries
                conn, _ = listener.accept()
                conn.recv(65536)
                conn.sendall(b"garbage\r\n\r\n")
                conn.close()

        threading.Thread(target=answer_garbage, daemon=True).start()
        with pytest.raises(ConnectError, match="BadStatusLine"):
            post(transport(f"http://127.0.0.1:{listener.getsockname()[1]}", concurrency=1))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    where = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", where / "key.pem", "-out", where / "cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(where / "cert.pem", where / "key.pem")
    return where / "cert.pem", context


def test_https_trusts_the_ca_bundle_named_in_the_environment(certificate, monkeypatch, tmp_path):
    cert, context = certificate
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    with Server(tls=context) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert post(transport(server.url, concurrency=2))["choices"][0]["text"] == "ok"

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(_another_ca(tmp_path)))
        with pytest.raises(ConnectError, match=r"TLS connection to https://127\.0\.0\.1:\d+.*REQUESTS_CA_BUNDLE"):
            post(transport(server.url, concurrency=2))


def _another_ca(where):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
         "-keyout", where / "other-key.pem", "-out", where / "other.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    return where / "other.pem"


class Proxy(ThreadingHTTPServer):
    """A forwarding HTTP proxy: it takes the absolute-form request, sends it on, and notes what it saw."""

    daemon_threads = True

    def __init__(self):
        self.seen: list[tuple[str, str | None]] = []
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    def __enter__(self) -> Proxy:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.server.seen.append((self.path, self.headers.get("Proxy-Authorization")))
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        upstream.request("POST", target.path, body=body, headers={"Content-Type": "application/json"})
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_requests_go_through_the_environments_proxy_with_its_credentials(monkeypatch):
    with Server() as server, Proxy() as proxy:
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://alice:s3cret@127.0.0.1:{proxy.server_address[1]}")
        t = transport(server.url + "/v1", concurrency=2)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: post(t), range(8)))
        assert all(a["choices"][0]["text"] == "ok" for a in answers)
        auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        assert proxy.seen == [(server.url + "/v1/v1/completions", auth)] * 8
        assert server.paths == ["/v1/v1/completions"] * 8

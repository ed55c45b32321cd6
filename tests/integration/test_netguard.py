"""The URL policy and the guarded HTTP client: what is refused, that every hop is checked, that the connection
goes to the address that was checked, and that downloads stop at their limits while streaming.

No test sends traffic anywhere but loopback: refused addresses are refused before any connection, and host
names are resolved by a resolver the test passes in (never by DNS)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from shotline.errors import UrlRefused
from shotline.netguard import (
    DownloadLimit,
    UrlPolicy,
    address_problem,
    check_url,
    guarded_client,
    guarded_stream,
    read_limited,
    redact,
    resolve_checked,
)

STRICT = UrlPolicy()


# --- the policy, offline -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("https://[fd00:ec2::254]/latest/", "cloud metadata address"),
        ("https://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("https://127.0.0.1/a.png", "loopback"),
        ("https://127.8.9.10/a.png", "loopback"),
        ("https://[::1]/a.png", "loopback"),
        ("https://2130706433/a.png", "loopback"),  # 127.0.0.1 as one decimal number
        ("https://0x7f.1/a.png", "loopback"),
        ("https://[2002:7f00:1::]/a.png", "loopback"),  # 6to4 around 127.0.0.1
        ("https://[64:ff9b::a00:1]/a.png", "private"),  # NAT64 around 10.0.0.1
        ("https://10.1.2.3/a.png", "private"),
        ("https://172.16.0.9/a.png", "private"),
        ("https://192.168.1.1/a.png", "private"),
        ("https://[fc00::1]/a.png", "private"),
        ("https://169.254.10.10/a.png", "link-local"),
        ("https://[fe80::1]/a.png", "link-local"),
        ("https://224.0.0.251/a.png", "multicast"),
        ("https://[ff02::1]/a.png", "multicast"),
        ("https://0.0.0.0/a.png", "unspecified"),
        ("https://240.0.0.1/a.png", "reserved"),
        ("https://100.64.0.1/a.png", "not globally routable"),
        ("https://localhost/a.png", "this machine"),
        ("https://LOCALHOST./a.png", "this machine"),
        ("https://api.localhost/a.png", "this machine"),
        ("http://example.com/a.png", "plain http:// URLs are refused"),
        ("ftp://example.com/a.png", "scheme 'ftp' is refused"),
        ("file:///etc/passwd", "scheme 'file' is refused"),
        ("gopher://example.com/", "scheme 'gopher' is refused"),
        ("https://user:pw@example.com/a.png", "user:password@"),
        ("https:///a.png", "no host"),
    ],
)
def test_refused_without_any_lookup(url: str, needle: str) -> None:
    with pytest.raises(UrlRefused, match=needle) as info:
        check_url(url, STRICT)
    assert "pw" not in str(info.value)


def test_public_urls_pass_and_keep_their_query() -> None:
    assert str(check_url("https://cdn.example.com/a.png?sig=1", STRICT)) == "https://cdn.example.com/a.png?sig=1"
    assert str(check_url("https://8.8.8.8/a.png", STRICT)) == "https://8.8.8.8/a.png"
    assert check_url("s3://bucket/key.png", STRICT, schemes=("https", "http", "s3")) is None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111"])
def test_public_addresses_have_no_problem(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_allow_list_forms() -> None:
    policy = UrlPolicy(allow_hosts=("10.0.0.0/8", "files.corp.example", "*.cdn.example", "http://127.0.0.1:8080"))
    assert check_url("https://10.9.9.9/a.png", policy)
    assert check_url("https://files.corp.example/a.png", policy)
    assert check_url("https://img.cdn.example/a.png", policy)
    assert check_url("http://127.0.0.1:8080/a.png", policy)  # the origin: plain http included
    with pytest.raises(UrlRefused, match="loopback"):
        check_url("https://127.0.0.1:8080/a.png", policy)  # same host, another origin
    with pytest.raises(UrlRefused, match="plain http"):
        check_url("http://127.0.0.1:8081/a.png", policy)
    with pytest.raises(UrlRefused, match="private"):
        check_url("https://192.168.0.1/a.png", policy)
    assert policy.allows_name("a.b.cdn.example") and not policy.allows_name("cdn.example.evil")


def test_environment_variables() -> None:
    policy = UrlPolicy.from_env({"SHOTLINE_ALLOW_HOSTS": " 127.0.0.1, *.corp.example ,", "SHOTLINE_ALLOW_HTTP": "yes"})
    assert policy.allow_http and policy.allow_hosts == ("127.0.0.1", "*.corp.example")
    assert UrlPolicy.from_env({}) == STRICT
    for bad in ("ftp://x", "a b", "http://host/with/path", "*"):
        with pytest.raises(UrlRefused, match="SHOTLINE_ALLOW_HOSTS"):
            UrlPolicy.from_env({"SHOTLINE_ALLOW_HOSTS": bad})
    with pytest.raises(ValueError):
        UrlPolicy(allow_hostz=("x",))  # type: ignore[call-arg]


def test_redact_drops_credentials_and_signatures() -> None:
    assert redact("https://u:p@h.example/a.png?X-Amz-Signature=s3cr3t#f") == "https://h.example/a.png?…"
    assert redact("images/a.png") == "images/a.png"


def test_every_resolved_address_must_pass() -> None:
    policy = UrlPolicy(allow_hosts=("127.0.0.1",))
    assert resolve_checked("img.test", 443, policy, resolver=lambda h, p: ["127.0.0.1"]) == "127.0.0.1"
    with pytest.raises(UrlRefused, match=r"resolves to 10\.0\.0\.1, which is private"):
        resolve_checked("img.test", 443, policy, resolver=lambda h, p: ["127.0.0.1", "10.0.0.1"])
    with pytest.raises(httpx.ConnectError, match="cannot resolve"):
        resolve_checked("img.test", 443, policy, resolver=_unresolvable)


def _unresolvable(host: str, port: int) -> list[str]:
    raise OSError(-2, "Name or service not known")


# --- the guarded client against a real server on loopback ----------------------------------------------


@dataclass
class Server:
    url: str
    port: int
    hosts: list[str] = field(default_factory=list)  # the Host header of every request
    sent: dict[str, int] = field(default_factory=dict)  # bytes written per streaming path before it stopped


def hostile_handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.hosts.append(self.headers.get("Host", ""))
            path = self.path
            if path.startswith("/redirect?to="):
                self._redirect(path.split("=", 1)[1])
            elif path == "/loop":
                self._redirect("/loop")
            elif path == "/endless":
                self._endless()
            elif path == "/trickle":
                self._trickle()
            elif path == "/declared-huge":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
            else:
                self._body(b"hello")

        def _redirect(self, to: str) -> None:
            self.send_response(302)
            self.send_header("Location", to)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _body(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _endless(self) -> None:
            # chunked, no length: only the reader can stop it. Bounded at 256 MiB so a broken test ends.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            sent = 0
            try:
                while sent < 256 << 20:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except OSError:
                pass
            finally:
                server.sent[self.path] = sent
                self.close_connection = True

        def _trickle(self) -> None:
            # a byte every 20 ms: each read is quick, the whole never ends (bounded at 10 s for a broken test)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pause = threading.Event()
            try:
                for _ in range(500):
                    self.wfile.write(b"1\r\nx\r\n")
                    self.wfile.flush()
                    pause.wait(0.02)
            except OSError:
                pass
            self.close_connection = True

    return Handler


def serve(
    handler_for: Callable[[Server], type[http.server.BaseHTTPRequestHandler]], tls: ssl.SSLContext | None = None
) -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    server = Server(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}", port=port)
    httpd.RequestHandlerClass = handler_for(server)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serve(hostile_handler)


def trusting(server: Server) -> UrlPolicy:
    return UrlPolicy().trusting(server.url)


def test_a_trusted_origin_is_fetched(server: Server) -> None:
    with guarded_client(trusting(server)) as client:
        assert client.get(f"{server.url}/a").text == "hello"


def test_loopback_is_refused_before_connecting(server: Server) -> None:
    with guarded_client(UrlPolicy(allow_http=True)) as client, pytest.raises(UrlRefused, match="loopback"):
        client.get(f"{server.url}/a")
    assert server.hosts == []


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "plain http"),
        ("https://169.254.169.254/latest/meta-data/iam/", "cloud metadata address"),
        ("https://10.0.0.1/internal", "private"),
        ("https://[::1]:9/x", "loopback"),
        ("file:///etc/passwd", "scheme 'file'"),
    ],
)
def test_every_redirect_is_checked_again(server: Server, target: str, needle: str) -> None:
    with guarded_client(trusting(server)) as client, pytest.raises(UrlRefused, match=needle):
        client.get(f"{server.url}/redirect?to={target}")
    assert len(server.hosts) == 1  # the first hop only; the refused one never left


def test_a_redirect_to_another_port_of_a_trusted_host_is_not_trusted(server: Server) -> None:
    with guarded_client(trusting(server)) as client, pytest.raises(UrlRefused, match="plain http"):
        client.get(f"{server.url}/redirect?to=http://127.0.0.1:{server.port + 1}/")


def test_redirects_are_bounded(server: Server) -> None:
    with guarded_client(trusting(server)) as client, pytest.raises(httpx.TooManyRedirects):
        client.get(f"{server.url}/loop")
    assert len(server.hosts) == 6  # the request and five redirects


def test_the_connection_goes_to_the_address_that_was_checked(server: Server) -> None:
    """A name is resolved once per request; the request is sent to that address with the name as Host."""
    answers = [["127.0.0.1"], ["10.0.0.1"]]  # a rebinding DNS: allowed at first, internal afterwards
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    policy = UrlPolicy(allow_http=True, allow_hosts=("127.0.0.1",))
    with guarded_client(policy, resolver=rebinding) as client:
        assert client.get(f"http://images.test:{server.port}/a").text == "hello"
        assert asked == ["images.test"] and server.hosts == [f"images.test:{server.port}"]
        with pytest.raises(UrlRefused, match=r"images\.test' resolves to 10\.0\.0\.1, which is private"):
            client.get(f"http://images.test:{server.port}/b")
    assert len(server.hosts) == 1


def test_a_stream_stops_at_the_size_limit_while_streaming(server: Server) -> None:
    with (
        guarded_stream(f"{server.url}/endless", trusting(server)) as response,
        pytest.raises(DownloadLimit, match="larger than 100,000 bytes") as info,
    ):
        read_limited(response, max_bytes=100_000)
    assert info.value.kind == "size"
    server_done = _wait_for(lambda: "/endless" in server.sent)
    assert server_done and server.sent["/endless"] < 32 << 20  # socket buffers at most, not the 256 MiB


def test_a_stream_stops_at_the_time_limit(server: Server) -> None:
    with (
        guarded_stream(f"{server.url}/trickle", trusting(server)) as response,
        pytest.raises(DownloadLimit, match=r"took longer than 0\.3 s") as info,
    ):
        read_limited(response, max_bytes=1 << 20, timeout_s=0.3)
    assert info.value.kind == "time"


def test_a_declared_length_over_the_limit_is_refused_before_reading(server: Server) -> None:
    with (
        guarded_stream(f"{server.url}/declared-huge", trusting(server)) as response,
        pytest.raises(DownloadLimit, match="1,000,000,000 bytes; at most 1,000"),
    ):
        read_limited(response, max_bytes=1000)


def _wait_for(condition: Callable[[], bool], attempts: int = 200) -> bool:
    event = threading.Event()
    for _ in range(attempts):
        if condition():
            return True
        event.wait(0.02)
    return condition()


# --- TLS: the name stays the certificate's name when the connection is pinned ---------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, ssl.SSLContext]]:
    """An https server for the name `images.test` (self-signed), and a client context that trusts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "images.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("images.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_pem, key_pem)
    for server in serve(hostile_handler, tls=server_ctx):
        yield server, ssl.create_default_context(cafile=str(cert_pem))


def test_tls_is_verified_against_the_name_while_connecting_to_the_checked_address(
    tls_server: tuple[Server, ssl.SSLContext],
) -> None:
    server, trust = tls_server
    policy = UrlPolicy(allow_hosts=("127.0.0.1",))
    with guarded_client(policy, resolver=lambda h, p: ["127.0.0.1"], verify=trust) as client:
        assert client.get(f"https://images.test:{server.port}/a").text == "hello"
    assert server.hosts == [f"images.test:{server.port}"]
    # The same address without the name: the certificate does not match, so the handshake fails.
    with guarded_client(policy, verify=trust) as client, pytest.raises(httpx.ConnectError, match="certificate"):
        client.get(f"https://127.0.0.1:{server.port}/a")

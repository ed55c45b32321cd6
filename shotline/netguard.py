"""Which URLs shotline may fetch, and an httpx client that enforces it on every hop.

A storyboard may name any URL, so fetching one must not become a way into the network shotline runs in.
The policy (`UrlPolicy`):

- schemes: `https` always; `http` only with `allow_http` (SHOTLINE_ALLOW_HTTP=1); `s3` for sources (boto3
  fetches those from the configured endpoint, not this module); anything else is refused.
- URLs carrying `user:password@` are refused (credentials do not belong in a storyboard or a fal answer).
- every address a host resolves to must be globally routable: loopback, private, link-local (the cloud
  metadata address 169.254.169.254 included), multicast, reserved, unspecified, shared (100.64/10) and
  documentation ranges are refused, also when hidden in IPv4-mapped, 6to4 or NAT64 IPv6 addresses.
- the allow-list (SHOTLINE_ALLOW_HOSTS, comma-separated) lifts that, entry by entry:
    `files.example.com`, `*.example.com`   this host (or any subdomain): whatever it resolves to
    `10.0.0.0/8`, `127.0.0.1`               addresses in this network
    `http://127.0.0.1:9000`                this exact origin (scheme, host, port): plain http included

How it is enforced (`GuardedTransport`): for every request, redirects included since httpx sends each hop
through the transport, the URL is checked, the host is resolved once, every address is checked, and the
connection goes to the checked address (the URL is re-pointed at the IP; the Host header and the TLS server
name stay the hostname, so certificates are verified against the name). A DNS answer that changes between
the check and the connect (DNS rebinding) therefore cannot redirect the connection. Keep-alive is off, so a
TLS session verified for one name is never reused for another host on the same address, and environment
proxies are ignored (a proxy would make the checked address meaningless).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from shotline.errors import ShotlineError, UrlRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

ALLOW_HOSTS_ENV = "SHOTLINE_ALLOW_HOSTS"
ALLOW_HTTP_ENV = "SHOTLINE_ALLOW_HTTP"
SOURCE_SCHEMES = ("https", "http", "s3")
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_TRUE = {"1", "true", "yes", "on"}


class DownloadLimit(ShotlineError):
    """A download went over its size (`kind` "size") or time (`kind` "time") limit; it was stopped while
    streaming, or before, when the declared length was already too much."""

    def __init__(self, message: str, kind: Literal["size", "time"]) -> None:
        self.kind = kind
        super().__init__(message)


class UrlPolicy(BaseModel):
    """What may be fetched. Immutable; `from_env()` reads SHOTLINE_ALLOW_HTTP and SHOTLINE_ALLOW_HOSTS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_http: bool = False
    allow_hosts: tuple[str, ...] = ()
    max_redirects: int = Field(default=5, ge=0, le=20)
    _names: tuple[str, ...] = PrivateAttr(default=())
    _networks: tuple[Network, ...] = PrivateAttr(default=())
    _origins: frozenset[tuple[str, str, int]] = PrivateAttr(default=frozenset())

    @field_validator("allow_hosts")
    @classmethod
    def _parseable(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _parse_allow_list(value)
        return value

    def model_post_init(self, __context: Any) -> None:
        self._names, self._networks, self._origins = _parse_allow_list(self.allow_hosts)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UrlPolicy:
        env = os.environ if env is None else env
        hosts = tuple(h.strip() for h in (env.get(ALLOW_HOSTS_ENV) or "").split(",") if h.strip())
        try:
            return cls(allow_http=(env.get(ALLOW_HTTP_ENV) or "").strip().lower() in _TRUE, allow_hosts=hosts)
        except ValidationError as exc:
            raise UrlRefused(f"{ALLOW_HOSTS_ENV}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None

    def trusting(self, url: str) -> UrlPolicy:
        """This policy plus the origin of `url` (scheme, host, port), e.g. a configured service's base URL."""
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            return self
        origin = f"{parts.scheme}://{_host_for_url(parts.hostname)}:{_port(parts.scheme, parts.port)}"
        return self.extended(allow_hosts=(origin,))

    def extended(self, *, allow_http: bool = False, allow_hosts: tuple[str, ...] = ()) -> UrlPolicy:
        """A copy that also allows http (when asked) and the given allow-list entries."""
        return UrlPolicy(
            allow_http=self.allow_http or allow_http,
            allow_hosts=(*self.allow_hosts, *allow_hosts),
            max_redirects=self.max_redirects,
        )

    # -- decisions ----------------------------------------------------------------------------------------

    def trusts_origin(self, scheme: str, host: str, port: int) -> bool:
        return (scheme, _norm_host(host), port) in self._origins

    def allows_name(self, host: str) -> bool:
        host = _norm_host(host)
        return any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in self._names)

    def allows_address(self, address: Address) -> bool:
        return any(address in net for net in self._networks)


def address_problem(address: Address) -> str | None:
    """Why an address is not a public internet address, or None if it is."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner)
        return f"{problem} ({inner}, embedded in it)" if problem else None
    if address in METADATA_ADDRESSES:
        return "the cloud metadata address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def redact(url: str) -> str:
    """A URL fit for a message or a log: no user info, no query (it may hold a signature), no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0][:200]
    if not parts.scheme:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def check_url(url: str, policy: UrlPolicy, *, schemes: tuple[str, ...] = ("https", "http")) -> httpx.URL | None:
    """Everything that can be decided without DNS: scheme, credentials, and a host given as an address or a
    local name. Returns the parsed URL (None for an accepted s3:// URI); raises UrlRefused."""
    shown = redact(url)
    try:
        parts_scheme = urlsplit(url).scheme.lower()
    except ValueError:
        parts_scheme = ""
    if parts_scheme not in schemes:
        allowed = " or ".join(f"{s}://" for s in schemes if s != "http" or policy.allow_http)
        raise UrlRefused(f"the URL scheme {parts_scheme or '(none)'!r} is refused: use {allowed} ({shown})", shown)
    if parts_scheme == "s3":
        return None
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise UrlRefused(f"not a valid URL: {_first_line(exc)} ({shown})", shown) from None
    if not parsed.host:
        raise UrlRefused(f"the URL has no host ({shown})", shown)
    if parsed.userinfo:
        raise UrlRefused(f"URLs with user:password@ are refused; credentials do not belong here ({shown})", shown)
    port = parsed.port or _port(parsed.scheme)
    if policy.trusts_origin(parsed.scheme, parsed.host, port):
        return parsed
    if parsed.scheme == "http" and not policy.allow_http:
        raise UrlRefused(f"plain http:// URLs are refused, use https:// (or set {ALLOW_HTTP_ENV}=1) ({shown})", shown)
    if policy.allows_name(parsed.host):
        return parsed
    literal = _literal_address(parsed.host)
    if literal is not None:
        _check_address(parsed.host, literal, policy, shown)
    elif _norm_host(parsed.host) in _LOCAL_NAMES or _norm_host(parsed.host).endswith(".localhost"):
        raise UrlRefused(
            f"host {parsed.host!r} is this machine (loopback); allow it in {ALLOW_HOSTS_ENV} to fetch from it "
            f"({shown})",
            shown,
        )
    return parsed


def resolve_checked(
    host: str, port: int, policy: UrlPolicy, *, resolver: Resolver | None = None, check: bool = True
) -> str:
    """Resolve `host` once, check every address it has (unless `check` is False: a trusted origin), and
    return the one to connect to.

    Every address must pass (not just the first), so a name that mixes public and internal addresses is
    refused whichever one the connection would have picked."""
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = (resolver or system_resolver)(host, port)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise httpx.ConnectError(f"cannot resolve host {host!r}: no addresses")
    if check and not policy.allows_name(host):
        for address in addresses:
            _check_address(host, address, policy, host)
    return str(addresses[0])


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


class GuardedTransport(httpx.HTTPTransport):
    """An HTTPTransport that checks each request's URL against the policy and connects only to an address
    it checked (see the module docstring)."""

    def __init__(self, policy: UrlPolicy, *, resolver: Resolver | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("limits", httpx.Limits(max_keepalive_connections=0))
        super().__init__(trust_env=False, **kwargs)
        self.policy = policy
        self.resolver = resolver

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = check_url(str(request.url), self.policy)
        assert url is not None
        port = url.port or _port(url.scheme)
        trusted = self.policy.trusts_origin(url.scheme, url.host, port)
        address = resolve_checked(url.host, port, self.policy, resolver=self.resolver, check=not trusted)
        if address == url.host:
            return super().handle_request(request)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions.setdefault("sni_hostname", url.host)
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,  # keeps Host: the name, not the address
            stream=request.stream,
            extensions=extensions,
        )
        return super().handle_request(pinned)


def guarded_client(
    policy: UrlPolicy,
    *,
    timeout: httpx.Timeout | float = 60.0,
    resolver: Resolver | None = None,
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.Client:
    """An httpx client that follows redirects, each hop checked by a `GuardedTransport`. A float `timeout`
    bounds each connect (at most 10 s), read and write. `verify`: an SSL context trusting another CA."""
    if not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
    return httpx.Client(
        transport=GuardedTransport(policy, resolver=resolver, verify=verify),
        timeout=timeout,
        follow_redirects=True,
        max_redirects=policy.max_redirects,
        trust_env=False,
        headers={"User-Agent": "shotline", **(headers or {})},
    )


@contextlib.contextmanager
def guarded_stream(
    url: str,
    policy: UrlPolicy,
    *,
    timeout: httpx.Timeout | float = 120.0,
    resolver: Resolver | None = None,
    headers: Mapping[str, str] | None = None,
) -> Iterator[httpx.Response]:
    """GET `url` through a guarded client, streaming; for callers that read the body themselves (with
    `read_limited`, or their own loop and limits). Raises UrlRefused for any hop the policy refuses."""
    check_url(url, policy)  # as written, for the message; the transport checks every hop again
    with (
        guarded_client(policy, timeout=timeout, resolver=resolver, headers=headers) as client,
        client.stream("GET", url) as response,
    ):
        yield response


def read_limited(response: httpx.Response, *, max_bytes: int, timeout_s: float | None = None) -> bytes:
    """The body of a streamed response, stopped as soon as it passes `max_bytes` or the deadline.

    A declared Content-Length over the limit is refused before any of the body is read."""
    shown = redact(str(response.url))
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadLimit(
            f"the body is {int(declared):,} bytes; at most {max_bytes:,} are accepted ({shown})", "size"
        )
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise DownloadLimit(f"the body is larger than {max_bytes:,} bytes; stopped reading ({shown})", "size")
        if deadline is not None and time.monotonic() > deadline:
            raise DownloadLimit(f"the download took longer than {timeout_s:g} s; stopped reading ({shown})", "time")
    return bytes(body)


# -- internals --------------------------------------------------------------------------------------------


def _check_address(host: str, address: Address, policy: UrlPolicy, shown: str) -> None:
    problem = address_problem(address)
    if problem is None or policy.allows_address(address):
        return
    said = f"host {host!r} resolves to {address}" if _literal_address(host) is None else f"address {address}"
    raise UrlRefused(
        f"{said}, which is {problem}: refused (allow it in {ALLOW_HOSTS_ENV} if it is meant) ({shown})", shown
    )


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _literal_address(host: str) -> Address | None:
    """`host` as an IP address when it is one, legacy IPv4 spellings (`2130706433`, `0x7f.1`) included."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _parse_allow_list(entries: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[Network, ...], frozenset[Any]]:
    names: list[str] = []
    networks: list[Network] = []
    origins: set[tuple[str, str, int]] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        if "://" in entry:
            parts = urlsplit(entry)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"allow-list entry {entry!r}: an origin is scheme://host[:port], http or https")
            origins.add((parts.scheme, _norm_host(parts.hostname), _port(parts.scheme, parts.port)))
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        name = _norm_host(entry)
        label = name.removeprefix("*.")
        if not label or any(c in label for c in "/:@ ") or "*" in label:
            raise ValueError(f"allow-list entry {entry!r} is neither a host name, an address, a network nor an origin")
        else:
            names.append(name)
    return tuple(names), tuple(networks), frozenset(origins)


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _port(scheme: str, port: int | None = None) -> int:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme, 0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__

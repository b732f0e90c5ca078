"""ASGI middleware in front of the web app: who the client is behind a proxy, and how big a body may be.

:class:`ForwardedClient`
    A reverse proxy (nginx, Caddy, Traefik, HAProxy …) connects to the gateway itself, so the direct
    peer is the proxy; it names the real client in ``X-Forwarded-For`` or ``Forwarded`` (RFC 7239).
    Those headers are believed only when the direct peer is in ``web.trusted_proxies`` (IP addresses
    or CIDR networks; empty by default). Anyone else could write any address there and so rotate
    past the sign-in throttle. The client is the right-most address in the chain that is not itself a
    trusted proxy (the left part of the chain is written by the client and proves nothing).
    ``X-Forwarded-Proto`` from a trusted proxy sets the scheme, so cookies are ``Secure`` behind a
    TLS proxy. The ASGI server must not rewrite the client itself (uvicorn: ``proxy_headers=False``,
    as ``meterhub run`` starts it), or its own trust rule (127.0.0.1 by default) would apply first.

:class:`BodyLimit`
    Refuses a request body larger than its route allows with ``413`` and a JSON message *before* the
    application reads or parses any of it: from ``Content-Length`` when it is sent, else by counting
    the streamed (chunked) bytes and stopping at the limit. 1 MiB for every body (the API takes JSON
    only) and 512 KiB plus the multipart envelope for the logo upload.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BODY_MAX",
    "LOGO_BODY_MAX",
    "LOGO_PATH",
    "BodyLimit",
    "ForwardedClient",
    "client_from_chain",
    "parse_networks",
]

#: Largest request body of any route [bytes]; every API body is JSON and the largest real one (a whole
#: site configuration) is a few tens of KiB.
BODY_MAX: Final = 1024 * 1024
#: The logo upload route (multipart/form-data) and its largest body [bytes]: the route's 512 KiB file
#: limit plus room for the multipart boundary and part headers, so a logo of exactly 512 KiB passes.
LOGO_PATH: Final = "/api/v1/site/logo"
LOGO_BODY_MAX: Final = 512 * 1024 + 8 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``web.trusted_proxies`` entries (``"10.0.0.5"``, ``"192.168.1.0/24"``, ``"::1"``) as networks.

    Raises ValueError naming the entry that is neither an IP address nor a CIDR network.
    """
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"trusted proxy {entry!r} is not an IP address or a CIDR network (e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return tuple(out)


def _address(text: str) -> Address | None:
    """An address from a forwarded node: ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:80``, ``::1``;
    None for ``unknown``, obfuscated names (``_hidden``) and anything else."""
    node = text.strip().strip('"').strip()
    if node.startswith("["):  # RFC 7239 §6: IPv6 in brackets, optionally with a port
        node = node[1 : node.find("]")] if "]" in node else ""
    elif node.count(":") == 1:  # IPv4 with a port
        node = node.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(node)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, networks: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def client_from_chain(chain: Sequence[str], peer: Address, networks: Sequence[Network]) -> Address:
    """The client named by a forwarding chain (oldest hop first) that reached us through ``peer``.

    Walks from the right over trusted proxies; the first hop that is not one is the client. A hop that
    is not an address ends the walk at the last trusted hop seen, so garbage never becomes a client.
    When every hop is trusted, the left-most one is the client.
    """
    client = peer
    for text in reversed(chain):
        addr = _address(text)
        if addr is None:
            return client
        client = addr
        if not _trusted(addr, networks):
            return addr
    return client


def _forwarded(value: str, param: str) -> list[str]:
    """The ``param`` (``for``, ``proto``) of each element of a ``Forwarded`` header (RFC 7239 §4), in
    order; "" for an element without it (a ``for`` chain cannot be followed past such an element)."""
    out = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, node = pair.partition("=")
            if name.strip().lower() == param:
                out.append(node.strip().strip('"'))
                break
        else:
            out.append("")
    return out


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope["headers"] if k == name]


def _split(values: list[str]) -> list[str]:
    return [item for v in values for item in v.split(",")]


class ForwardedClient:
    """Sets ``scope["client"]`` (and ``scheme``) from proxy headers sent by a trusted proxy only.

    ``trusted`` returns the current ``web.trusted_proxies`` (so a configuration edit applies to the
    next request). With ``X-Forwarded-For`` and ``Forwarded`` both present they must name the same
    client, else the proxy itself is taken as the client: a proxy sets one of them and passes the other
    through untouched, so a disagreement means the client wrote one.
    """

    def __init__(self, app: ASGIApp, *, trusted: Callable[[], Sequence[str]]) -> None:
        self.app = app
        self.trusted = trusted
        self._parsed: tuple[tuple[str, ...], tuple[Network, ...]] = ((), ())

    def _networks(self) -> tuple[Network, ...]:
        entries = tuple(self.trusted())
        if entries != self._parsed[0]:  # parse once per configuration, not per request
            self._parsed = (entries, parse_networks(entries))
        return self._parsed[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope) -> None:
        networks = self._networks()
        peer = _address(str(scope["client"][0]))
        if not networks or peer is None or not _trusted(peer, networks):
            return
        candidates = []
        xff = _header_values(scope, b"x-forwarded-for")
        if xff:
            candidates.append(client_from_chain(_split(xff), peer, networks))
        fwd = ",".join(_header_values(scope, b"forwarded"))
        if fwd:
            candidates.append(client_from_chain(_forwarded(fwd, "for"), peer, networks))
        if candidates:
            client = candidates[0] if all(c == candidates[0] for c in candidates) else peer
            scope["client"] = (str(client), 0)
        proto = _split(_header_values(scope, b"x-forwarded-proto")) or (
            _forwarded(fwd, "proto") if fwd else []
        )
        scheme = proto[-1].strip().lower() if proto else ""  # the value set by the proxy nearest to us
        if scheme in ("http", "https"):
            scope["scheme"] = scheme.replace("http", "ws") if scope["type"] == "websocket" else scheme


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n / 1024:.0f} KiB"


class BodyLimit:
    """Refuses request bodies over the route's limit with 413 before the app reads them.

    ``limits`` maps exact paths to their own limit [bytes]; every other path gets ``default`` [bytes].
    A chunked body (no ``Content-Length``) is read here up to its limit and handed on whole, so the
    memory a request can take is bounded by the limit, whoever sends it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: int = BODY_MAX,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default = default
        self.limits = dict({LOGO_PATH: LOGO_BODY_MAX} if limits is None else limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        lengths = _header_values(scope, b"content-length")
        if lengths:
            try:
                declared = int(lengths[0])
            except ValueError:
                declared = -1
            if declared < 0 or any(v != lengths[0] for v in lengths):
                await _refuse(send, 400, "the Content-Length header is not a single non-negative integer")
                return
            if declared > limit:
                await _refuse(send, 413, _too_large(scope, limit))
                return
            # The server delivers no more than Content-Length bytes (HTTP/1.1 framing), so no counting.
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE") and not _header_values(
            scope, b"transfer-encoding"
        ):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before the body ended: nothing to answer
            body += message.get("body", b"")
            if len(body) > limit:
                await _refuse(send, 413, _too_large(scope, limit))
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)


def _too_large(scope: Scope, limit: int) -> str:
    return (
        f"the request body is larger than {_size(limit)} ({limit} bytes), the most "
        f"{scope['method']} {scope['path']} accepts"
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that first yields the buffered body, then whatever the connection sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, detail: str) -> None:
    """A JSON error; ``Connection: close`` so the server does not read the rest of the body."""
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

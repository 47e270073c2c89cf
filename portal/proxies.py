"""The client's address, derived in one place from the proxies the deployment trusts.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only as far as
proxies named in ``TRUSTED_PROXIES`` wrote it. Starting from the socket peer, each trusted
proxy hands over to the address it recorded (the header's right-most remaining entry), and the
first address that is not a trusted proxy is the client. With no trusted proxy the client is
the socket peer and the header is ignored, so a rotating ``X-Forwarded-For`` cannot make one
client look like many.

``TrustedProxyMiddleware`` wraps the ASGI application, so ``REMOTE_ADDR`` is the client under
any ASGI server (uvicorn runs with its own proxy handling off). The API throttles, allauth's
rate limits and the audit trail read the address through ``request_client_address``, which
applies the same function again: the result of ``client_address`` is a fixed point of it, so
the second pass changes nothing, and it also holds where no ASGI server sits in front (the test
client, WSGI).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]

# Rate limits count an IPv6 client by its /64, the block one subscriber is usually given
# (allauth does the same for its own per-address limits): rotating addresses inside it gains
# nothing.
IPV6_LIMIT_PREFIX = 64


@functools.lru_cache(maxsize=8)
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def trusted_proxies() -> tuple[Network, ...]:
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _parse(text: str) -> Address | None:
    """An address from a socket peer or a forwarded entry (``1.2.3.4``, ``1.2.3.4:5678``,
    ``[2001:db8::1]:443``, ``2001:db8::1``); ``None`` for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address given the socket peer and the ``X-Forwarded-For`` header.

    An entry that is not an address stops the walk at the trusted proxy that passed it on, so
    a client cannot choose its identity by sending garbage either.
    """
    if not peer:
        return peer
    address = _parse(peer)
    if address is None:  # not an IP peer (a Unix socket): nothing to resolve
        return peer
    networks = trusted_proxies()
    hops = [hop for hop in (forwarded_for or "").split(",") if hop.strip()]
    while hops and _is_trusted(address, networks):
        recorded = _parse(hops.pop())
        if recorded is None:
            break
        address = recorded
    return str(address)


def request_client_address(request: HttpRequest) -> str | None:
    """The client's address for a Django request (see ``client_address``)."""
    return client_address(request.META.get("REMOTE_ADDR"),
                          request.META.get("HTTP_X_FORWARDED_FOR"))


def address_for_limits(address: str) -> str:
    """The identity a rate limit counts: the address itself, or an IPv6 address's /64."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network(f"{parsed}/{IPV6_LIMIT_PREFIX}", strict=False)
        return str(network.network_address)
    return str(parsed) if parsed is not None else address


class TrustedProxyMiddleware:
    """ASGI middleware setting each HTTP and WebSocket connection's client to
    ``client_address``, whatever server runs the portal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            forwarded = ",".join(value.decode("latin-1")
                                 for name, value in scope.get("headers", ())
                                 if name == b"x-forwarded-for")
            address = client_address(client[0], forwarded)
            if address != client[0]:
                # In place, as uvicorn's own proxy middleware does: the server's log lines
                # then name the client too.
                scope["client"] = (address, 0)
        await self.app(scope, receive, send)

"""Where a webhook may be sent: public HTTPS addresses only (the SSRF rule).

Two moments apply the rule. When an endpoint is saved, ``check_url`` refuses what can be seen
in the URL alone: another scheme than ``https``, credentials in the URL, an over-long URL, a
literal address that is not public, ``localhost``. When a delivery is sent, the host name is
resolved again and *every* address it resolves to must be public (``public_addresses``); the
connection then goes to one of those checked addresses (``notifications.transport`` pins it),
so a name that changes its answer between the check and the connection (DNS rebinding) gains
nothing.

Not public: loopback, private (RFC 1918, unique local), link-local (with the cloud metadata
address 169.254.169.254), carrier-grade NAT (100.64.0.0/10), multicast, reserved and
documentation ranges, the unspecified address, and IPv6 forms that carry one of those in an
IPv4 address (IPv4-mapped, 6to4, NAT64); Teredo is refused outright.

Tests reach a local receiver through ``WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS``, honoured only
when the settings say they are the test settings (``TESTING``): the production rule itself is
never weakened.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from notifications.models import URL_MAX

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NOT_PUBLIC_V4 = [ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
)]
_NOT_PUBLIC_V6 = [ipaddress.IPv6Network(n) for n in (
    "::/96", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")
# Cloud metadata services (each is also inside a range above; listed so the intent is plain).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254",
))
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class TargetRefused(Exception):
    """The target is not a public address; the message says which address and why."""


def private_targets_allowed() -> bool:
    """Tests only: the test settings (``TESTING``) and their explicit allowance, together."""
    return bool(getattr(settings, "TESTING", False)
                and getattr(settings, "WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS", False))


def is_public(address: IPAddress | str) -> bool:
    """May a webhook connect to ``address``?"""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _TEREDO:
            return False
        if ip.sixtofour is not None:
            return is_public(ip.sixtofour)
        if ip in _NAT64:
            return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(ip in net for net in _NOT_PUBLIC_V6):
            return False
    elif any(ip in net for net in _NOT_PUBLIC_V4):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback
                                 or ip.is_link_local or ip.is_unspecified)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _is_local_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def split(url: str) -> tuple[SplitResult, str, int]:
    """The URL's parts, its host (lower case, without brackets) and port; ``ValueError`` for
    a URL that cannot be a webhook's at all."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or 443  # .port raises ValueError for a port out of range
    if not host:
        raise ValueError("no host")
    return parts, host, port


def check_url(url: str) -> str:
    """The URL as it will be stored, or ``ValidationError`` saying what is wrong with it."""
    url = (url or "").strip()
    if not url:
        raise ValidationError(_("Enter the URL that receives the events."), code="required")
    if len(url) > URL_MAX:
        raise ValidationError(_("Use a URL of at most %(max)s characters.") % {"max": URL_MAX},
                              code="too_long")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise ValidationError(_("A URL cannot contain spaces or control characters."),
                              code="invalid")
    if not url.isascii():
        raise ValidationError(_("Write the URL in ASCII: percent-encode the path and use the "
                                "xn-- form of an international domain name."), code="ascii")
    try:
        parts, host, _port = split(url)
    except ValueError:
        raise ValidationError(_("Enter a full URL such as https://hooks.example.com/portal."),
                              code="invalid") from None
    if parts.scheme.lower() != "https":
        raise ValidationError(_("Webhooks are sent over HTTPS only: use an https:// URL."),
                              code="https_only")
    if "@" in parts.netloc:
        raise ValidationError(_("Leave credentials out of the URL: every request is signed "
                                "instead."), code="credentials")
    if parts.fragment:
        raise ValidationError(_("A webhook URL has no #fragment."), code="fragment")
    if not private_targets_allowed():
        literal = _literal(host)
        if (literal is not None and not is_public(literal)) or _is_local_name(host):
            raise ValidationError(_("Webhooks go to public addresses only; %(host)s is not "
                                    "one.") % {"host": host}, code="not_public")
    return url


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to now (a literal address is itself), in the
    resolver's order, without repeats; ``TargetRefused`` when it resolves to none."""
    literal = _literal(host)
    if literal is not None:
        return [str(literal)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(_("%(host)s could not be resolved (%(error)s).")
                            % {"host": host, "error": exc}) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused(_("%(host)s has no address.") % {"host": host})
    return addresses


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to for ``host``: all of them must be public (one private
    answer refuses the lot, so a name cannot mix a public address with an internal one)."""
    addresses = resolve(host, port)
    if private_targets_allowed():
        return addresses
    refused = [a for a in addresses if not is_public(a)]
    if refused:
        raise TargetRefused(_("%(host)s resolves to %(address)s, which is not a public "
                              "address; webhooks go to public addresses only.")
                            % {"host": host, "address": refused[0]})
    return addresses

"""One signed POST to a webhook, sent safely: ``post`` never raises, it says what happened.

The host is resolved at send time and only public addresses are used
(``notifications.targets``); the TCP connection goes to the checked address itself, while TLS
verifies the certificate for the host name (SNI) and the ``Host`` header names it, so what was
checked is what is reached. No proxy from the environment, no redirect followed (a 3xx is a
failed attempt), a bounded connect time, a bounded time for the whole answer, and at most
``MAX_ANSWER_BYTES`` of it read; ``EXCERPT_BYTES`` of it are kept for the delivery log.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.translation import gettext as _

from notifications import targets
from notifications.models import EXCERPT_BYTES, DeliveryAttempt

Outcome = DeliveryAttempt.Outcome
MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "kube-portal-webhooks/1"


@dataclass(frozen=True)
class Answer:
    """What one attempt came to."""

    outcome: str
    status_code: int | None = None
    latency_ms: int | None = None
    excerpt: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.SUCCESS


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    extra = getattr(settings, "WEBHOOK_CA_FILE", "")
    if extra:
        context.load_verify_locations(cafile=extra)
    return context


@receiver(setting_changed)
def _forget_context(*, setting: str, **kwargs: object) -> None:
    if setting == "WEBHOOK_CA_FILE":
        _tls_context.cache_clear()


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTPS to ``host`` (SNI, certificate, Host header) over a socket to ``address``."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float,
                 connect_timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._connect_timeout = connect_timeout
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port),
                                        timeout=self._connect_timeout)
        try:
            sock.settimeout(self.timeout)
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _excerpt(data: bytes) -> str:
    return data[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST ``body`` to ``url`` with ``headers``; the answer, or why there is none."""
    connect_timeout = float(settings.WEBHOOK_CONNECT_TIMEOUT)
    read_timeout = float(settings.WEBHOOK_READ_TIMEOUT)
    try:
        parts, host, port = targets.split(url)
    except ValueError:
        return Answer(Outcome.REFUSED, error=_("The URL is not valid."))
    if parts.scheme.lower() != "https":
        return Answer(Outcome.REFUSED, error=_("Only https:// URLs are used."))
    try:
        addresses = targets.public_addresses(host, port)
    except targets.TargetRefused as exc:
        return Answer(Outcome.REFUSED, error=str(exc)[:300])
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    started = time.monotonic()
    deadline = started + connect_timeout + read_timeout
    failure = Answer(Outcome.CONNECTION_ERROR, error=_("No address of %(host)s answered.")
                     % {"host": host})
    for address in addresses:
        connection = _PinnedConnection(host, port, address=address, timeout=read_timeout,
                                       connect_timeout=connect_timeout, context=_tls_context())
        try:
            try:
                connection.connect()
            except ssl.SSLError as exc:
                return Answer(Outcome.TLS_ERROR, error=_("TLS failed: %(error)s")
                              % {"error": getattr(exc, "reason", None) or exc})
            except TimeoutError:
                failure = Answer(Outcome.TIMEOUT, error=_("Connecting took longer than "
                                                          "%(s)s s.") % {"s": connect_timeout})
                continue
            except OSError as exc:
                failure = Answer(Outcome.CONNECTION_ERROR, error=_(
                    "Could not connect to %(address)s: %(error)s")
                    % {"address": address, "error": exc.strerror or exc})
                continue
            return _exchange(connection, target, body, headers, started, deadline,
                             read_timeout)
        finally:
            connection.close()
    return failure


def _cut(connection: _PinnedConnection) -> None:
    """Shut the socket down: a receiver that drips its answer cannot hold a worker beyond the
    deadline (each read alone is bounded by the read timeout, their sum is not)."""
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _exchange(connection: _PinnedConnection, target: str, body: bytes,
              headers: dict[str, str], started: float, deadline: float,
              read_timeout: float) -> Answer:
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _cut, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        return _send_and_read(connection, target, body, headers, started, deadline,
                              read_timeout)
    finally:
        watchdog.cancel()


def _send_and_read(connection: _PinnedConnection, target: str, body: bytes,
                   headers: dict[str, str], started: float, deadline: float,
                   read_timeout: float) -> Answer:
    try:
        connection.request("POST", target, body=body, headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        latency = int((time.monotonic() - started) * 1000)
        kept = bytearray()
        while len(kept) < MAX_ANSWER_BYTES and time.monotonic() < deadline:
            chunk = response.read1(min(16384, MAX_ANSWER_BYTES - len(kept)))
            if not chunk:
                break
            kept += chunk
    except TimeoutError:
        return Answer(Outcome.TIMEOUT, latency_ms=int((time.monotonic() - started) * 1000),
                      error=_("No answer within %(s)s s.") % {"s": read_timeout})
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline:
            return Answer(Outcome.TIMEOUT, latency_ms=int((time.monotonic() - started) * 1000),
                          error=_("The answer took longer than the time allowed."))
        if isinstance(exc, ssl.SSLError):
            return Answer(Outcome.TLS_ERROR, error=_("TLS failed: %(error)s") % {"error": exc})
        return Answer(Outcome.CONNECTION_ERROR,
                      error=(_("The connection failed: %(error)s") % {"error": exc})[:300])
    status = response.status
    excerpt = _excerpt(bytes(kept))
    if 200 <= status < 300:
        return Answer(Outcome.SUCCESS, status, latency, excerpt)
    if 300 <= status < 400:
        return Answer(Outcome.REDIRECT, status, latency, excerpt,
                      _("The receiver answered with a redirect (%(status)s), which webhooks do "
                        "not follow.") % {"status": status})
    return Answer(Outcome.HTTP_ERROR, status, latency, excerpt,
                  _("The receiver answered %(status)s.") % {"status": status})

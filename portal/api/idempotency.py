"""``Idempotency-Key``: a retried write returns the first answer instead of writing twice.

The record of a key is inserted in the same transaction as the write it protects, and holds the
answer when that transaction commits. So:

* a retry after success finds the stored answer and gets it again (``Idempotent-Replayed: true``);
* a concurrent retry blocks on the unique constraint (user, key) until the first request commits,
  then replays its answer: one cluster, however many retries race;
* a request that failed (any non-2xx) leaves no record, so it can be retried with the same key;
* the same key with a different method, path or body is a 409.

Keys are remembered for ``RETENTION``; a key older than that starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from portal.api.problems import ApiProblem
from portal.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 200  # Operation.idempotency_key holds it too
STORED_HEADERS = ("Location",)


class Replay(Exception):
    """Raised from the view's ``initial()`` to answer with a stored response."""

    def __init__(self, response: Response) -> None:
        super().__init__("idempotent replay")
        self.response = response


def requested_key(request: Any) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise ApiProblem("invalid-idempotency-key", _(
            "The Idempotency-Key header must be 1 to %(max)d printable ASCII characters, such as "
            "a UUID.") % {"max": MAX_KEY_LENGTH})
    return key


def _canonical_body(request: Any) -> str:
    data = request.data
    if isinstance(data, QueryDict):
        data = data.dict()
    return json.dumps(data, cls=JSONEncoder, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def fingerprint(request: Any) -> str:
    text = "\n".join((request.method, request.get_full_path(), _canonical_body(request)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    headers = {**record.response_headers, REPLAYED_HEADER: "true"}
    return Response(record.response_body, status=record.status_code, headers=headers)


def claim(request: Any, key: str) -> IdempotencyRecord:
    """Insert the key's record in the current transaction, or raise ``Replay`` / a 409.

    Must run inside the transaction that performs the write (see ``ApiView.dispatch``).
    """
    user = request.user
    print_ = fingerprint(request)
    now = timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    user=user, key=key, method=request.method, path=request.path[:500],
                    fingerprint=print_, created_at=now)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # the other request rolled back in between: try to claim again
        if existing.created_at < now - RETENTION:
            existing.delete()
            continue
        if existing.fingerprint != print_:
            raise ApiProblem("idempotency-key-reused", _(
                "This Idempotency-Key was already used for a different request (%(method)s "
                "%(path)s, or another body). Use a new key for a new request.")
                % {"method": existing.method, "path": existing.path})
        raise Replay(_replay(existing))
    raise ApiProblem("conflict", _("A request with this Idempotency-Key is still being "
                                   "processed; retry in a moment."),
                     code="idempotency_in_progress", headers={"Retry-After": "1"})


def store(record: IdempotencyRecord, response: Response) -> None:
    body = json.loads(json.dumps(response.data, cls=JSONEncoder))
    headers = {name: response[name] for name in STORED_HEADERS if response.has_header(name)}
    record.status_code = response.status_code
    record.response_body = body
    record.response_headers = headers
    record.save(update_fields=["status_code", "response_body", "response_headers"])
    # Forget this user's expired keys now and then (cheap: indexed on user and time).
    IdempotencyRecord.objects.filter(user=record.user_id, created_at__lt=timezone.now()
                                     - RETENTION).delete()

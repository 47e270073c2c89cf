"""The base view of every API endpoint: tenant, role, token scope, idempotency, pagination.

Order of checks on each request, so that answers never leak more than the caller may know:
authentication (401) → throttles (429) → tenant membership (404 for outsiders, whatever the
method) → token scope and tenant restriction (403 / 404) → the method's permission from the
one permission table (403) → ``Idempotency-Key`` (replay / 409) → the handler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.db import transaction
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import idempotency
from portal.api.authentication import request_token
from portal.api.pagination import CursorPage, SequencePage
from portal.api.problems import ApiProblem, exception_handler
from portal.audit import Actor, client_ip
from portal.models import AuditEntry
from portal.tenancy import IMPERSONATION_SESSION_KEY, TenantContext, access_tenant

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def request_person(request: Request) -> User:
    """The signed-in caller (every endpoint requires one, so DRF has answered 401 before)."""
    user = request.user
    if not user.is_authenticated:
        raise NotAuthenticated
    return user


def api_tenant_context(request: Any, slug: str) -> TenantContext:
    """The tenant ``slug`` as the caller sees it; 404 for outsiders and other-tenant tokens."""
    token = request_token(request)
    if token is not None and token.tenant is not None and token.tenant.slug != slug:
        raise Http404
    impersonate = None
    if token is None:
        session = getattr(request, "session", None)
        impersonate = session.get(IMPERSONATION_SESSION_KEY) if session is not None else None
    return access_tenant(request.user, slug, None, impersonate_tenant_id=impersonate)


class ApiView(APIView):
    """Subclasses declare ``perms`` ({method: permission}) and implement the handlers."""

    perms: ClassVar[Mapping[str, str]] = {}
    # Unsafe methods that only read (e.g. POST /estimate/): allowed to read-only tokens.
    read_only_methods: ClassVar[frozenset[str]] = frozenset()
    # Credentials (kubeconfigs) need a read-write token even though fetching one is a read.
    requires_write_token: ClassVar[bool] = False
    # Remember successful writes under their Idempotency-Key (off where the answer is secret).
    idempotent_writes: ClassVar[bool] = True
    # Extra problem statuses per method for the OpenAPI document (401/403/404/429/400/409 are
    # added where they apply).
    problem_statuses: ClassVar[Mapping[str, tuple[int, ...]]] = {}
    pagination_class = CursorPage
    cursor_ordering: ClassVar[Sequence[str] | str] = "-id"

    ctx: TenantContext | None = None
    _idempotency_record: Any = None
    _body_fields: frozenset[str] | None = None

    def get_exception_handler(self) -> Any:
        return exception_handler

    # -- the checks ----------------------------------------------------------------------------

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        slug = kwargs.get("tenant_slug")
        if slug is not None:
            self.ctx = api_tenant_context(request, slug)
        self.check_token_scope(request)
        perm = self.required_perm(request.method)
        if perm is not None:
            if self.ctx is None:
                raise Http404
            self.ctx.require(perm)
        if request.method not in SAFE_METHODS and self.idempotent_writes:
            key = idempotency.requested_key(request)
            if key is not None:
                self._idempotency_record = idempotency.claim(request, key)

    def required_perm(self, method: str) -> str | None:
        if method in ("HEAD", "OPTIONS"):
            method = "GET"
        return self.perms.get(method)

    def check_token_scope(self, request: Any) -> None:
        token = request_token(request)
        if token is None or token.can_write:
            return
        if self.requires_write_token:
            raise ApiProblem("read-only-token", _(
                "Kubeconfigs are credentials: fetching one needs a read-write token."))
        if request.method not in SAFE_METHODS and request.method not in self.read_only_methods:
            raise ApiProblem("read-only-token", _(
                "This token is read-only; create a read-write token to make changes."))

    # -- idempotent writes -----------------------------------------------------------------------

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if (request.method in SAFE_METHODS or not self.idempotent_writes
                or idempotency.HEADER not in request.headers):
            return super().dispatch(request, *args, **kwargs)
        # The key's record, the write and the stored answer commit together, or not at all.
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            record = self._idempotency_record
            if record is not None:
                if not isinstance(response, Response):  # every handler answers with one
                    raise TypeError(f"{type(self).__name__} answered without a DRF Response")
                if 200 <= response.status_code < 300:
                    idempotency.store(record, response)
                else:
                    transaction.set_rollback(True)
        return response

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, idempotency.Replay):
            return exc.response
        return super().handle_exception(exc)

    # -- helpers for handlers ------------------------------------------------------------------

    @property
    def tenant_ctx(self) -> TenantContext:
        if self.ctx is None:
            raise Http404
        return self.ctx

    @property
    def actor(self) -> Actor:
        token = request_token(self.request)
        return Actor(user=request_person(self.request), via=AuditEntry.Via.API,
                     ip=client_ip(self.request), token_name=token.name if token else "",
                     read_only=bool(self.ctx is not None and self.ctx.read_only))

    def serializer_context(self) -> dict[str, Any]:
        return {"request": self.request, "view": self, "ctx": self.ctx}

    def page(self, queryset: Any, serializer_class: Any) -> Response:
        paginator = self.pagination_class()
        rows = paginator.paginate_queryset(queryset, self.request, view=self)
        data = serializer_class(rows, many=True, context=self.serializer_context()).data
        return paginator.get_paginated_response(data)

    def sequence_page(self, items: Sequence[Any], serializer_class: Any) -> Response:
        paginator = SequencePage()
        rows = paginator.paginate_sequence(items, self.request)
        data = serializer_class(rows, many=True, context=self.serializer_context()).data
        return paginator.get_paginated_response(data)

    def parse(self, serializer_class: Any, *, partial: bool = False, data: Any = None,
              **kwargs: Any) -> Any:
        """Validated input (400 with every field error otherwise)."""
        serializer = serializer_class(data=self.request.data if data is None else data,
                                      partial=partial, context=self.serializer_context(),
                                      **kwargs)
        if data is None:
            self._body_fields = frozenset(serializer.fields)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def error_body_roots(self) -> frozenset[str] | None:
        """Top-level fields of the request body, so errors point into it only where they can."""
        if self._body_fields is not None:
            return self._body_fields
        return frozenset() if self.request.method in SAFE_METHODS else None

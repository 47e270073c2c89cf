"""How the API describes itself in OpenAPI 3.1 (drf-spectacular).

Things every operation shares are added here once rather than repeated on each view: the path
parameters, the ``Idempotency-Key`` header on writes, the problem-details error responses and
their ``Retry-After`` header, the ``Location`` and ``Idempotent-Replayed`` headers of accepted
writes, and the token security scheme.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework import serializers

from portal.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, TYPE_PREFIX

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --------------------------------------------------------------------------- problem bodies


class ProblemFieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True,
        help_text=_("Path of the field in the portal's own notation, e.g. "
                    "`node_groups[1].max_replicas`; null for an error about the whole request."))
    pointer = serializers.CharField(
        allow_null=True,
        help_text=_("JSON pointer (as a URI fragment) into the request body, e.g. "
                    "`#/node_groups/1/max_replicas`; null when the error is not about a field "
                    "that was sent (e.g. `quota`)."))
    code = serializers.CharField(help_text=_("Stable machine code, e.g. `out_of_range`."))
    detail = serializers.CharField(help_text=_("What is wrong, in a sentence."))


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem details object, served as ``application/problem+json``."""

    type = serializers.CharField(
        help_text=_("URI naming the kind of problem (`%(prefix)s<kind>`); stable, compare "
                    "with it.") % {"prefix": TYPE_PREFIX})
    title = serializers.CharField(help_text=_("Short summary of the kind of problem."))
    status = serializers.IntegerField(help_text=_("The HTTP status code."))
    detail = serializers.CharField(help_text=_("What happened, for a person."))
    instance = serializers.CharField(help_text=_("The request path."))
    code = serializers.CharField(
        help_text=_("Stable machine code; for conflicts it says which one (e.g. `busy`, "
                    "`no_change`, `idempotency_key_reused`)."))
    errors = ProblemFieldErrorSerializer(  # type: ignore[assignment]  # a declared field: DRF's metaclass takes it off the class
        many=True, required=False,
        help_text=_("One entry per problem with a field, for 400, 409 and 422."))
    request_id = serializers.CharField(
        required=False, help_text=_("Quote it to support; also in the X-Request-ID header."))


PROBLEM_DESCRIPTIONS: dict[int, Any] = {
    400: _("Malformed request: not JSON, wrong types, unknown or missing fields, a bad cursor "
           "or page size, or an invalid Idempotency-Key."),
    401: _("No credentials, or the token is unknown, expired or revoked."),
    403: _("Authenticated, but the role in this tenant, the token's scope (read-only) or a "
           "suspended tenant does not allow it."),
    404: _("No such object, or one in a tenant the caller does not belong to."),
    409: _("Conflicts with the current state: another change in flight (`busy`), nothing to "
           "change (`no_change`), already exists, or an Idempotency-Key reused for another "
           "request."),
    415: _("The body must be `application/json`."),
    422: _("Well-formed, but refused by the platform rules or the tenant quota; `errors` "
           "points at each field."),
    429: _("Too many requests for this token or user; wait `Retry-After` seconds."),
    502: _("The platform refused the request."),
    503: _("The platform cannot be reached, or changes are paused because it runs a release "
           "the portal does not know yet (`platform_release_unknown`); retry after "
           "`Retry-After` seconds."),
}

PROBLEM_EXAMPLES = {
    422: {"type": TYPE_PREFIX + "validation-failed",
          "title": "The request cannot be carried out", "status": 422,
          "detail": "The maximum (1) cannot be below the minimum (3).",
          "instance": "/api/v1/tenants/acme/clusters/", "code": "validation_failed",
          "errors": [{"field": "node_groups[0].max_replicas",
                      "pointer": "#/node_groups/0/max_replicas", "code": "min_above_max",
                      "detail": "The maximum (1) cannot be below the minimum (3)."}],
          "request_id": "3f2a9c1d4e5b6a70"},
    409: {"type": TYPE_PREFIX + "conflict", "title": "This conflicts with the current state",
          "status": 409, "detail": "Another change to this cluster is still in progress.",
          "instance": "/api/v1/tenants/acme/clusters/prod-eu/", "code": "busy",
          "errors": [{"field": None, "pointer": None, "code": "busy",
                      "detail": "Another change to this cluster is still in progress."}]},
}


# --------------------------------------------------------------------------- path parameters

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "tenant_slug": {
        "description": _("The tenant's slug, as listed by `GET /api/v1/tenants/`."),
        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9]*$", "maxLength": 46},
        "example": "acme",
    },
    "cluster_name": {
        "description": _("The cluster's name (unique in the tenant)."),
        "schema": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$",
                   "maxLength": 42},
        "example": "prod-eu",
    },
    "group_name": {
        "description": _("The node group's name (unique in the cluster)."),
        "schema": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                   "maxLength": 39},
        "example": "md0",
    },
    "operation_id": {
        "description": _("The operation's id, as returned by the write that started it."),
        "schema": {"type": "integer", "minimum": 1, "maximum": 999999999999999999},
        "example": 42,
    },
    "invoice_id": {
        "description": _("The invoice's id."),
        "schema": {"type": "integer", "minimum": 1, "maximum": 999999999999999999},
        "example": 7,
    },
    "webhook_id": {
        "description": _("The webhook's id, as listed by `…/webhooks/`."),
        "schema": {"type": "integer", "minimum": 1, "maximum": 999999999999999999},
        "example": 3,
    },
    "delivery_id": {
        "description": _("The delivery's id, as listed by `…/deliveries/`."),
        "schema": {"type": "integer", "minimum": 1, "maximum": 999999999999999999},
        "example": 1001,
    },
}

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description=_(
        "Any unique string up to 200 printable ASCII characters (a UUID is ideal). A retry "
        "with the same key and the same request returns the first answer (with "
        "`Idempotent-Replayed: true`) instead of acting twice, for 24 hours; the same key with "
        "a different request is a 409. Only successful answers are remembered."),
    examples=[OpenApiExample("uuid", value="2b8f3f5e-6a54-4e0b-9a53-0d1f7f0e9c11")],
)

RETRY_AFTER_HEADER = {
    "description": _("Seconds to wait before trying again."),
    "schema": {"type": "integer", "minimum": 1},
}
WRITE_HEADERS = {
    "Location": {"description": _("Where the created object or the operation can be read."),
                 "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": _("`true` when this is the stored answer to an earlier request with the "
                         "same Idempotency-Key."),
        "schema": {"type": "string", "enum": ["true"]}},
}


class PortalAutoSchema(AutoSchema):
    """AutoSchema plus everything the portal's API operations share."""

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        named = {getattr(p, "name", None) for p in parameters}
        for name, spec in PATH_PARAMETERS.items():
            if f"{{{name}}}" in self.path and name not in named:
                parameters.append(OpenApiParameter(
                    name, dict(spec["schema"]), OpenApiParameter.PATH, required=True,
                    description=str(spec["description"]),
                    examples=[OpenApiExample("example", value=spec["example"])]))
        if self.method in UNSAFE_METHODS and getattr(self.view, "idempotent_writes", False):
            parameters.append(IDEMPOTENCY_KEY_PARAMETER)
        return parameters

    def _problem_statuses(self, operation: dict[str, Any]) -> set[int]:
        statuses = {401, 403, 429}
        if "{" in self.path:
            statuses.add(404)
        has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
        if has_query or "requestBody" in operation or self.method in UNSAFE_METHODS:
            statuses.add(400)
        if self.method in UNSAFE_METHODS:
            statuses |= {409, 503}
        if "requestBody" in operation:
            statuses.add(415)
        statuses |= set(getattr(self.view, "problem_statuses", {}).get(self.method, ()))
        return statuses

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str,
                      registry: Any) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        ref = self.resolve_serializer(ProblemSerializer, "response").ref
        for status in sorted(self._problem_statuses(operation)):
            key = str(status)
            if key in responses:
                continue
            content: dict[str, Any] = {"schema": ref}
            if status in PROBLEM_EXAMPLES:
                content["examples"] = {"example": {"value": PROBLEM_EXAMPLES[status]}}
            response: dict[str, Any] = {"description": str(PROBLEM_DESCRIPTIONS[status]),
                                        "content": {PROBLEM_CONTENT_TYPE: content}}
            if status in (429, 503):
                response["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
            responses[key] = response
        if self.method in UNSAFE_METHODS:
            for key in ("200", "201", "202"):
                if key in responses:
                    headers = responses[key].setdefault("headers", {})
                    for name, header in WRITE_HEADERS.items():
                        if name == "Location" and key == "200":
                            continue
                        headers.setdefault(name, header)
        return operation


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "kp_…",
            "description": str(_(
                "A personal access token from your profile page (Profile → API tokens), sent as "
                "`Authorization: Bearer kp_…`. Tokens are shown once, can be read-only, limited "
                "to one tenant, and expire.")),
        }


# Fields that mean the same thing wherever they appear are described once.
COMMON_FIELD_DESCRIPTIONS = {
    "url": _("This object in the API."),
    "results": _("The items of this page."),
    "created_at": _("When it was created."),
    "updated_at": _("When it last changed."),
}


def strict_request_bodies(result: dict[str, Any], generator: Any, request: Any,
                          public: bool) -> dict[str, Any]:
    """Postprocessing hook: request bodies reject unknown fields (the serializers do), and
    the common fields get their one description."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
        for prop, spec in (component.get("properties") or {}).items():
            if prop in COMMON_FIELD_DESCRIPTIONS and "description" not in spec:
                spec["description"] = str(COMMON_FIELD_DESCRIPTIONS[prop])
    return result


def problem_types_markdown() -> str:
    rows = "\n".join(f"| `{p.uri}` | {p.status} | {p.title} |" for p in PROBLEM_TYPES.values())
    return "| type | status | title |\n|---|---|---|\n" + rows


API_DESCRIPTION = """\
Everything a person can do in the portal about clusters, kubeconfigs, usage and invoices, for
scripts, CI/CD and Terraform. The API reuses the portal's own actions and permission table: a
token can do exactly what its owner's role allows in each tenant, never more.

## Authentication
Create a **personal access token** on your profile page (*Profile → API tokens*). It is shown
once; the portal keeps only its hash. A token has a name, an expiry, a scope (`read` or
`read_write`) and may be limited to one tenant. Send it in the header, never in a URL:

    Authorization: Bearer kp_…

Read-only tokens cannot change anything and cannot fetch kubeconfigs (they are credentials).
In the browser, the API also accepts the portal session (writes then need the CSRF token).

## Tenancy and roles
Tenant data lives under `/api/v1/tenants/{tenant_slug}/`. A tenant you do not belong to
answers 404, as if it did not exist; what your role does not allow answers 403.

## Writes, operations and idempotency
A change to a cluster answers `202 Accepted` with an **operation** (`Location` header): poll it
until its `state` is `succeeded`, `failed` or `cancelled`. One change runs at a time per
cluster (409 `busy` otherwise). Send an `Idempotency-Key` header with every write: a retry
with the same key returns the first answer instead of acting twice (even when retries race),
and the same key with a different request is a 409.

## Lists
Every list is cursor-paginated: `{"next", "previous", "results"}`. Follow `next` until it is
null; `page_size` takes 1–200 (default 50).

## Limits
Requests are limited per token and per user; over the limit the answer is 429 with
`Retry-After` (seconds).

## Errors
Errors are RFC 9457 problem details (`application/problem+json`) with a stable `type` and
`code`, and for input errors an `errors` list pointing at each field (`field` in the portal's
notation, `pointer` into the request body). 400 malformed, 401 not authenticated, 403 not
allowed, 404 not found, 409 conflict, 422 refused by the platform rules or quota, 429 too many
requests, 503 platform unreachable.

{problem_types}

## Webhooks
A tenant's owners and admins register HTTPS endpoints (`…/webhooks/`) and choose events
(`cluster.ready`, `cluster.deleted`, `operation.succeeded`, `operation.failed`,
`budget.threshold`, `invoice.finalized`, `version.end_of_life_soon`,
`maintenance.scheduled`, `cluster.hibernated`, `cluster.woken`, `cluster.expiring`). Each is
POSTed as a JSON envelope `{id, type, time, tenant, data}`, described per type under
`webhooks` in this document, with a `Portal-Signature: t=<unix time>,v1=<hex>` header: the
HMAC-SHA256, keyed with the endpoint's secret, of `<t>.<raw body>`. Verify it in constant time
and refuse an old `t`. During a secret rotation's overlap a request carries one `v1` per secret.
Delivery is at least once (ignore an `id` seen before), retried with backoff for 24 hours; any 2xx
acknowledges it.

Field names are the portal's own, in snake_case; the platform's manifest for a cluster (in the
platform's camelCase) is available at `…/clusters/{cluster_name}/manifest/`.
"""

TAG_DESCRIPTIONS = {
    "Account": "The caller and the token in use.",
    "Tenants": "The tenants you belong to, your role and what it allows.",
    "Clusters": "Create, read, change, upgrade and delete clusters; kubeconfig and manifest.",
    "Node groups": "A cluster's worker node groups: add, scale, change, remove.",
    "Operations": "Changes in flight and done: steps, errors, retry and cancel; the timeline.",
    "Billing": "Usage, invoices and cost estimates.",
    "Webhooks": "Send the tenant's events to your own HTTPS endpoints, signed; the delivery "
                "log, test events and redelivery (owners and admins).",
    "Catalogue": "What the platform offers: versions, instance types, GPUs, storage, add-ons.",
}


def describe_api(result: dict[str, Any], generator: Any, request: Any,
                 public: bool) -> dict[str, Any]:
    """Postprocessing hook: the overview, the problem types and the tag descriptions."""
    result.setdefault("info", {})["description"] = API_DESCRIPTION.replace(
        "{problem_types}", problem_types_markdown())
    used = {tag for path in result.get("paths", {}).values() for op in path.values()
            if isinstance(op, dict) for tag in op.get("tags", [])}
    result["tags"] = [{"name": name, "description": text}
                      for name, text in TAG_DESCRIPTIONS.items() if name in used]
    return result

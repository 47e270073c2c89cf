"""The tenant's webhooks, under its settings: the list and a new endpoint, one endpoint (its
settings, secret, test event and latest deliveries) and one delivery (its attempts).

Owners and admins only: others get 403, other tenants' members 404. Each view is access →
form → action → response; the actions do the writing and the auditing.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from notifications import actions, queries
from notifications.forms import RotateForm, WebhookForm
from notifications.models import WebhookEndpoint
from portal.audit import actor_from_request
from portal.htmx import redirect_after_post, render_invalid
from portal.permissions import Perm
from portal.tenancy import TenantContext, tenant_view

POST = ("POST",)


def _apply_errors(form: WebhookForm | RotateForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _list_context(ctx: TenantContext, form: WebhookForm | None = None) -> dict[str, object]:
    return {"ctx": ctx, "endpoints": queries.endpoints(ctx),
            "form": form or WebhookForm(initial={"enabled": True}),
            "max_endpoints": actions.MAX_ENDPOINTS_PER_TENANT}


@tenant_view(Perm.WEBHOOKS_VIEW)
def webhook_list(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    return render(request, "notifications/webhooks.html", _list_context(ctx))


@tenant_view(Perm.WEBHOOKS_MANAGE, methods=POST)
def webhook_create(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            created = actions.do_create_webhook(actor_from_request(request), ctx,
                                                **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Webhook added. Copy its signing secret now."))
            return render(request, "notifications/webhook_detail.html", _detail_context(
                request, ctx, created.endpoint, new_secret=created.secret), status=201)
    return render_invalid(request, "notifications/webhooks.html", "create",
                          _list_context(ctx, form))


def _detail_context(request: HttpRequest, ctx: TenantContext, endpoint: WebhookEndpoint, *,
                    form: WebhookForm | None = None, rotate_form: RotateForm | None = None,
                    new_secret: str = "") -> dict[str, object]:
    page = Paginator(queries.deliveries(endpoint), 25).get_page(request.GET.get("page"))
    return {
        "ctx": ctx, "endpoint": endpoint, "page": page, "new_secret": new_secret,
        "previous_active": endpoint.previous_secret_active(queries.now()),
        "form": form or WebhookForm(initial={
            "url": endpoint.url, "description": endpoint.description,
            "event_types": endpoint.event_types, "enabled": endpoint.enabled}),
        "rotate_form": rotate_form or RotateForm(),
    }


@tenant_view(Perm.WEBHOOKS_VIEW)
def webhook_detail(request: HttpRequest, ctx: TenantContext, webhook_id: int) -> HttpResponse:
    endpoint = actions.access_endpoint(ctx, webhook_id)
    return render(request, "notifications/webhook_detail.html",
                  _detail_context(request, ctx, endpoint))


@tenant_view(Perm.WEBHOOKS_MANAGE, methods=POST)
def webhook_update(request: HttpRequest, ctx: TenantContext, webhook_id: int) -> HttpResponse:
    endpoint = actions.access_endpoint(ctx, webhook_id)
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            actions.do_update_webhook(actor_from_request(request), ctx, webhook_id,
                                      **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Webhook saved."))
            return redirect_after_post(request, "webhooks:detail", tenant_slug=ctx.tenant.slug,
                                       webhook_id=webhook_id)
    return render_invalid(request, "notifications/webhook_detail.html", "settings",
                          _detail_context(request, ctx, endpoint, form=form))


@tenant_view(Perm.WEBHOOKS_MANAGE, methods=POST)
def webhook_rotate(request: HttpRequest, ctx: TenantContext, webhook_id: int) -> HttpResponse:
    endpoint = actions.access_endpoint(ctx, webhook_id)
    form = RotateForm(request.POST)
    if form.is_valid():
        try:
            rotated = actions.do_rotate_secret(actor_from_request(request), ctx, webhook_id,
                                               **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("New signing secret created. Copy it now."))
            return render(request, "notifications/webhook_detail.html", _detail_context(
                request, ctx, rotated.endpoint, new_secret=rotated.secret))
    return render_invalid(request, "notifications/webhook_detail.html", "secret",
                          _detail_context(request, ctx, endpoint, rotate_form=form))


def _then_detail(request: HttpRequest, ctx: TenantContext, webhook_id: int, run,
                 success: str) -> HttpResponse:
    try:
        run(actor_from_request(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, success)
    return redirect_after_post(request, "webhooks:detail", tenant_slug=ctx.tenant.slug,
                               webhook_id=webhook_id)


@tenant_view(Perm.WEBHOOKS_MANAGE, methods=POST)
def webhook_test(request: HttpRequest, ctx: TenantContext, webhook_id: int) -> HttpResponse:
    return _then_detail(request, ctx, webhook_id,
                        lambda actor: actions.do_send_test(actor, ctx, webhook_id),
                        _("Test event sent; its delivery appears below."))


@tenant_view(Perm.WEBHOOKS_MANAGE, methods=POST)
def webhook_delete(request: HttpRequest, ctx: TenantContext, webhook_id: int) -> HttpResponse:
    actions.do_delete_webhook(actor_from_request(request), ctx, webhook_id)
    messages.success(request, _("Webhook removed."))
    return redirect_after_post(request, "webhooks:list", tenant_slug=ctx.tenant.slug)


@tenant_view(Perm.WEBHOOKS_VIEW)
def delivery_detail(request: HttpRequest, ctx: TenantContext, webhook_id: int,
                    delivery_id: int) -> HttpResponse:
    delivery = actions.access_delivery(ctx, webhook_id, delivery_id)
    return render(request, "notifications/delivery_detail.html", {
        "ctx": ctx, "endpoint": delivery.endpoint, "delivery": delivery,
        "attempts": queries.attempts(delivery), "body": queries.pretty_body(delivery)})


@tenant_view(Perm.WEBHOOKS_MANAGE, methods=POST)
def delivery_redeliver(request: HttpRequest, ctx: TenantContext, webhook_id: int,
                       delivery_id: int) -> HttpResponse:
    return _then_detail(
        request, ctx, webhook_id,
        lambda actor: actions.do_redeliver(actor, ctx, webhook_id, delivery_id),
        _("Sent again; the new delivery appears below."))


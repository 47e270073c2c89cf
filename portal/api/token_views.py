"""Profile page: the caller's API tokens (create, shown once; revoke; last use)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from portal.api.forms import ApiTokenForm
from portal.api.tokens import do_create_token, do_revoke_token, tokens_for
from portal.audit import actor_from_request
from portal.htmx import redirect_after_post

TEMPLATE = "portal/tokens.html"


def _apply_errors(form: ApiTokenForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _page(request: HttpRequest, form: ApiTokenForm, *, status: int = 200,
          new_token=None) -> HttpResponse:
    response = render(request, TEMPLATE, {"form": form, "tokens": tokens_for(request.user),
                                          "new_token": new_token}, status=status)
    # The page may hold a freshly created secret: never keep it in any cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.user, request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = do_create_token(
                    actor_from_request(request), name=data["name"], scope=data["scope"],
                    expires_in_days=data["expires_in_days"], tenant=data["tenant"])
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                return _page(request, ApiTokenForm(request.user),
                             new_token=created)
        return _page(request, form, status=422)
    return _page(request, form)


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = do_revoke_token(actor_from_request(request), token_id)
    messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return redirect_after_post(request, "api_tokens")

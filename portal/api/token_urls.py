from __future__ import annotations

from django.urls import path

from portal.api import token_views

urlpatterns = [
    path("", token_views.api_tokens, name="api_tokens"),
    path("<int:token_id>/revoke/", token_views.api_token_revoke, name="api_token_revoke"),
]

"""Mounted under ``/api/v1/`` by ``portal.api.urls``: the cost estimate of a spec."""

from __future__ import annotations

from django.urls import path

from billing.web.api.views import EstimateView

urlpatterns = [
    path("estimate/", EstimateView.as_view(), name="estimate"),
]

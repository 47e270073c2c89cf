"""The Celery application shared by the worker, beat and the web role (which only enqueues)."""

from __future__ import annotations

import os

from celery import Celery

from portal.metrics import celery as celery_metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task failures and retries, each process's role, the worker's and beat's metrics port.
celery_metrics.connect()

"""What the portal answers while its database (PostgreSQL) is out of reach: 503 with
``Retry-After``, never 500. An HTML page says the service is briefly unavailable and reloads
itself (a meta refresh: no script); the API answers a ``service-unavailable`` problem.

The errors are the ones a refused, dropped or terminated connection raises; the middleware
(``portal.middleware``) and the API's exception handler (``portal.api.problems``) turn them
into the 503. ``/healthz`` needs no database and keeps answering; ``/readyz`` says which
dependency is missing.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from django.utils.translation import gettext as _

DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 10


def unavailable_detail() -> str:
    return _("The portal cannot reach its database at the moment. Try again in a few seconds.")

"""What the API answers when the platform refuses or cannot be reached.

Registered with the portal's problem mapper in ``ClustersWebConfig.ready``: 503 with
``Retry-After`` while the management cluster is unreachable (retrying later can succeed), 502
with the platform's reason when it refuses.
"""

from __future__ import annotations

import logging

from django.utils.translation import gettext as _

from cozystack.gateway import PlatformError, PlatformUnavailable
from portal.api.problems import ApiProblem, register_problem_type

logger = logging.getLogger("portal.api")

PLATFORM_RETRY_AFTER_SECONDS = 30


def platform_unavailable(exc: PlatformUnavailable) -> ApiProblem:
    return ApiProblem("platform-unavailable",
                      _("The platform cannot be reached right now; try again shortly."),
                      headers={"Retry-After": str(PLATFORM_RETRY_AFTER_SECONDS)})


def platform_refused(exc: PlatformError) -> ApiProblem:
    logger.warning("api.platform_error", extra={"error": str(exc)})
    return ApiProblem("platform-error", exc.message)


def register() -> None:
    register_problem_type(PlatformError, platform_refused)
    register_problem_type(PlatformUnavailable, platform_unavailable)

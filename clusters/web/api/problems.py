"""What the API answers when the platform refuses or cannot be reached.

Registered with the portal's problem mapper in ``ClustersWebConfig.ready``: 503 with
``Retry-After`` while the management cluster is unreachable (retrying later can succeed), 502
with the platform's reason when it refuses, and 503 while changes are paused because the
platform runs a release the portal does not know yet.
"""

from __future__ import annotations

import logging

from django.utils.translation import gettext as _

from clusters.platform_release import UNKNOWN_CODE, PlatformReleaseUnknown
from cozystack.gateway import PlatformError, PlatformUnavailable
from portal.api.problems import ApiProblem, register_problem_type

logger = logging.getLogger("portal.api")

PLATFORM_RETRY_AFTER_SECONDS = 30
RELEASE_RETRY_AFTER_SECONDS = 300


def platform_unavailable(exc: PlatformUnavailable) -> ApiProblem:
    return ApiProblem("platform-unavailable",
                      _("The platform cannot be reached right now; try again shortly."),
                      headers={"Retry-After": str(PLATFORM_RETRY_AFTER_SECONDS)})


def platform_refused(exc: PlatformError) -> ApiProblem:
    logger.warning("api.platform_error", extra={"error": str(exc)})
    return ApiProblem("platform-error", exc.message)


def release_unknown(exc: PlatformReleaseUnknown) -> ApiProblem:
    return ApiProblem("platform-release-unknown", exc.messages[0], code=UNKNOWN_CODE,
                      headers={"Retry-After": str(RELEASE_RETRY_AFTER_SECONDS)})


def register() -> None:
    register_problem_type(PlatformError, platform_refused)
    register_problem_type(PlatformUnavailable, platform_unavailable)
    register_problem_type(PlatformReleaseUnknown, release_unknown)

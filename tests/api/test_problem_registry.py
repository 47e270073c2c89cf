"""Apps tell the API's problem mapper how to answer their own errors; the foundation names none.

The clusters web floor registers the platform's errors: 503 with Retry-After while the
management cluster is unreachable, 502 with its reason when it refuses.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIRequestFactory

from cozystack.gateway import Conflict, PlatformRejected, PlatformUnavailable
from portal.api import problems
from portal.api.problems import ApiProblem, exception_handler, register_problem_type

pytestmark = pytest.mark.django_db


class Late(Exception):
    pass


class VeryLate(Late):
    pass


@pytest.fixture
def registry(monkeypatch):
    """A registry of this test's own, starting from what the apps registered."""
    monkeypatch.setattr(problems, "_MAPPERS", dict(problems._MAPPERS))


def answer(exc: Exception):
    request = APIRequestFactory().get("/api/v1/somewhere/")
    return exception_handler(exc, {"request": request})


def test_a_registered_error_gets_the_problem_its_mapper_makes(registry):
    register_problem_type(Late, lambda exc: ApiProblem("conflict", f"too late: {exc}",
                                                       code="too_late"))

    response = answer(VeryLate("the train left"))

    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    assert response.data["code"] == "too_late"
    assert response.data["detail"] == "too late: the train left"
    assert response.data["type"] == "urn:kube-portal:problem:conflict"


def test_the_closest_registered_type_wins_whatever_the_order_of_registration(registry):
    register_problem_type(VeryLate, lambda exc: ApiProblem("conflict", code="very_late"))
    register_problem_type(Late, lambda exc: ApiProblem("validation-failed", code="late"))

    assert answer(VeryLate()).data["code"] == "very_late"
    assert answer(Late()).data["code"] == "late"


def test_an_unregistered_error_is_still_a_logged_500():
    assert answer(Late("surprise")).status_code == 500


def test_an_unreachable_platform_is_a_503_to_retry_after_30_seconds():
    response = answer(PlatformUnavailable("The platform is unreachable (timed out)."))

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.data["code"] == "platform_unavailable"
    assert response.data["detail"] == (
        "The platform cannot be reached right now; try again shortly.")


@pytest.mark.parametrize("error", [PlatformRejected, Conflict])
def test_a_platform_refusal_is_a_502_with_its_reason(error):
    response = answer(error("The platform refused the name."))

    assert response.status_code == 502
    assert response.data["code"] == "platform_error"
    assert response.data["detail"] == "The platform refused the name."
    assert "Retry-After" not in response

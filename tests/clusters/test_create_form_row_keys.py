"""The create form's node-group row keys (``groups`` and the ``_remove`` button) are numbers the
page writes itself: anything else a client sends is ignored, never a server error."""

from __future__ import annotations

import pytest

from tests.clusters.test_views_create import form_data
from tests.clusters.ui import offline_platform, url

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]

NOT_KEYS = ["1" * 5000, "²", "٣", "-1", "1.0", " 1", "", "1234567"]


@pytest.mark.parametrize("raw", NOT_KEYS, ids=lambda raw: repr(raw[:12]))
def test_only_short_ascii_digits_are_row_keys(raw):
    from clusters.web.forms import row_key

    assert row_key(raw) is None


def test_row_keys_the_page_writes_are_read_as_numbers():
    from clusters.web.forms import row_key

    assert [row_key(raw) for raw in ("0", "7", "123456")] == [0, 7, 123456]


@pytest.mark.parametrize("endpoint", ["create", "create_check"])
@pytest.mark.parametrize("raw", ["1" * 5000, "²"], ids=["5000-digits", "superscript-two"])
def test_a_remove_button_with_a_nonsense_key_keeps_the_rows(client_for, member, tenant,
                                                           endpoint, raw):
    response = client_for(member).post(url(endpoint, tenant), form_data(_remove=raw),
                                       headers={"HX-Request": "true"})

    assert response.status_code in (200, 422)
    assert 'name="ng-0-name"' in response.content.decode()


@pytest.mark.parametrize("raw", ["1" * 5000, "²"], ids=["5000-digits", "superscript-two"])
def test_a_row_list_with_a_nonsense_key_is_read_without_it(client_for, member, tenant, raw):
    response = client_for(member).post(url("create_check", tenant),
                                       form_data(groups=["0", raw]),
                                       headers={"HX-Request": "true"})

    assert response.status_code == 200

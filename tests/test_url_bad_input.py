"""Walks every URL pattern with nonsense in the query string and in the form: an owner, who may
do everything, gets a page or a clear 4xx, never a server error."""

from __future__ import annotations

import pytest

from tests.clusters.ui import offline_platform
from tests.test_url_isolation import PATTERNS, _ids, _url, world

__all__ = ["offline_platform", "world"]
pytestmark = pytest.mark.usefixtures("offline_platform")

JUNK = {"page": "-1x", "phase": "<script>", "version": "v9" * 20, "period": "2026-13",
        "since": "yesterday", "until": "31/02/2026", "verb": "' OR 1=1", "actor": "0x",
        "format": "exe", "limit": "-5", "offset": "abc", "ordering": "password",
        "cursor": "%%%", "lang": "xx", "tenant": "../../etc"}


# A 503 here is the answer itself: the probe says the platform is unreachable (it is, offline).
PROBES = {"readyz"}


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if p[0] not in PROBES], ids=_ids)
def test_nonsense_never_ends_in_a_server_error(pattern, world, client_for):
    name, params, _entry, _route = pattern
    path = _url(name, params, world)
    client = client_for(world.owner)
    client.raise_request_exception = False
    assert client.get(path, JUNK).status_code < 500, f"GET {path}"
    assert client.post(path, JUNK).status_code < 500, f"POST {path}"
    assert client.post(path, b"{not json", content_type="application/json").status_code < 500, \
        f"POST {path} (broken JSON)"

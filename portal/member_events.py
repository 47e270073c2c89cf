"""Domain events of tenancy (published through ``portal.events``).

Other domains react to them without tenancy knowing who listens: the clusters domain takes a
person who left a tenant off every cluster's access list.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MembershipEnded:
    """A person is no longer a member of a tenant: removed by an owner or admin, or they left.

    ``emails`` are every address the person is known by (lower case), read before the
    membership went.
    """

    tenant_id: int
    user_id: int
    emails: frozenset[str]

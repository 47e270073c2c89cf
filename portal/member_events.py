"""Domain events of tenancy (published through ``portal.events``).

Other domains react to them without tenancy knowing who listens: the clusters domain takes a
person who left a tenant off every cluster's access list, and lowers the access of a person
whose role was lowered to what the new role allows.
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


@dataclass(frozen=True)
class MembershipRoleChanged:
    """A member's role in a tenant changed (``before`` → ``after``, ``portal.permissions.Role``
    values), by an owner or admin, or by an ownership transfer.

    ``emails`` are every address the person is known by (lower case).
    """

    tenant_id: int
    user_id: int
    emails: frozenset[str]
    before: str
    after: str

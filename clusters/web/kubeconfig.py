"""The kubeconfig download, one for the cluster page and the API.

A kubeconfig is a credential. It is fetched from the platform on each download and never stored
or cached by the portal (the platform rotates its certificates); the role decides which one a
person may have (``admin`` for owners, admins and members, the break-glass ``super-admin`` for
owners and admins); a browser session must have signed in recently (a token is itself the
deliberate credential); a deleted cluster has none; every download is recorded in the audit log.
The surfaces only say, each in its own way, why there is no file.

The single sign-on kubeconfig (``download_oidc``) is another matter: it holds no credential,
only where the cluster is and how to sign in (``kubectl oidc-login`` against the platform's
identity provider, as the person themselves), so whoever may see the cluster may have it,
with no recent sign-in asked and nothing to audit. What the person may then do inside the
cluster is the role an owner or admin gave them (``oidc_users``).
"""

from __future__ import annotations

from enum import StrEnum

from django.http import HttpRequest, HttpResponse

from clusters import actions
from cozystack.gateway import NotFound, get_gateway, is_placeholder_kubeconfig
from portal.audit import Actor, record
from portal.permissions import Perm
from portal.reauthentication import require_recent_sign_in
from portal.tenancy import TenantContext


class Kind(StrEnum):
    ADMIN = "admin"
    SUPER_ADMIN = "super-admin"


_SECRET_KEYS = {Kind.ADMIN: "admin.conf", Kind.SUPER_ADMIN: "super-admin.conf"}
_PERMS = {Kind.ADMIN: Perm.KUBECONFIG_ADMIN, Kind.SUPER_ADMIN: Perm.KUBECONFIG_SUPER_ADMIN}


def filename(ctx: TenantContext, cluster_name: str, kind: Kind) -> str:
    """``<tenant>-<cluster>-kubeconfig.yaml``, with ``-super-admin`` before ``-kubeconfig``
    for the break-glass one."""
    suffix = "-super-admin" if kind == Kind.SUPER_ADMIN else ""
    return f"{ctx.tenant.slug}-{cluster_name}{suffix}-kubeconfig.yaml"


def download(request: HttpRequest, ctx: TenantContext, cluster_name: str, kind: Kind, *,
             actor: Actor, by_token: bool = False) -> HttpResponse:
    """The kubeconfig of ``kind`` for the live cluster ``cluster_name``, as a named attachment
    that no cache keeps. Records the download in the audit log; writes nothing else.

    Raises ``PermissionDenied`` (the role), allauth's ``ReauthenticationRequired`` (a browser
    session without a recent sign-in), ``Http404`` (no such live cluster), ``NotFound`` (the
    platform has not issued it yet) or another ``PlatformError``.
    """
    ctx.require(_PERMS[kind])
    if not by_token:
        require_recent_sign_in(request)
    cluster = actions.access_cluster(ctx, cluster_name)
    content = get_gateway().read_kubeconfig(ctx.tenant.namespace, cluster.name,
                                            _SECRET_KEYS[kind])
    record(actor, f"cluster.kubeconfig.{kind}", cluster, tenant=ctx.tenant,
           changes={"kubeconfig": [None, str(kind)]})
    response = HttpResponse(content, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{filename(ctx, cluster.name, kind)}"')
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


class OidcKubeconfigUnavailable(Exception):
    """No single sign-on kubeconfig to hand out; ``preparing`` tells the two cases apart."""

    def __init__(self, *, preparing: bool) -> None:
        super().__init__("preparing" if preparing else "not enabled")
        self.preparing = preparing


def oidc_filename(ctx: TenantContext, cluster_name: str) -> str:
    return f"{ctx.tenant.slug}-{cluster_name}-sso-kubeconfig.yaml"


def download_oidc(ctx: TenantContext, cluster_name: str) -> HttpResponse:
    """The single sign-on kubeconfig of the live cluster ``cluster_name``, as a named
    attachment. Writes nothing.

    Raises ``Http404`` (no such live cluster), ``OidcKubeconfigUnavailable`` (the cluster gives
    nobody access through single sign-on, or the platform is still preparing the file: its
    placeholder, or no file yet) or another ``PlatformError``.
    """
    ctx.require(Perm.CLUSTERS_VIEW)
    cluster = actions.access_cluster(ctx, cluster_name)
    if not cluster.oidc_users:
        raise OidcKubeconfigUnavailable(preparing=False)
    try:
        content = get_gateway().read_oidc_kubeconfig(ctx.tenant.namespace, cluster.name)
    except NotFound:
        raise OidcKubeconfigUnavailable(preparing=True) from None
    if is_placeholder_kubeconfig(content):
        raise OidcKubeconfigUnavailable(preparing=True)
    response = HttpResponse(content, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{oidc_filename(ctx, cluster.name)}"')
    response["Cache-Control"] = "no-cache"
    return response

"""Every write to tenancy: tenants, memberships, invitations, and staff's announcements.

Each action takes the actor explicitly, checks rights, writes in one transaction with its audit
entry, and defers side effects (email) until commit. Bad input raises ``ValidationError`` keyed by
field; missing rights raise ``PermissionDenied``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from portal import events, languages
from portal.audit import Actor, diff, record
from portal.branding import forget as forget_branding
from portal.member_events import MembershipEnded, MembershipRoleChanged
from portal.mfa import user_has_mfa
from portal.models import (
    Announcement,
    Branding,
    Invitation,
    Membership,
    MfaEnrolmentLink,
    Tenant,
    forget_announcements,
)
from portal.permissions import Perm, Role, assignable_roles
from portal.tenancy import TenantContext
from portal.validators import check_visible_text, clean_text_fields

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def _check_writable(actor: Actor) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))


def do_create_tenant(actor: Actor, *, slug: str, name: str) -> Tenant:
    """Create a tenant with ``actor`` as its owner."""
    _check_writable(actor)
    tenant = Tenant(slug=slug, name=name)
    tenant.full_clean()
    try:
        with transaction.atomic():
            tenant.save()
            Membership.objects.create(tenant=tenant, user=actor.person, role=Role.OWNER)
            record(actor, "tenant.create", tenant, tenant=tenant,
                   changes={"slug": [None, slug], "name": [None, name]})
    except IntegrityError:
        raise ValidationError({"slug": _("This slug is already taken.")}) from None
    return tenant


def do_rename_tenant(actor: Actor, ctx: TenantContext, *, name: str) -> Tenant:
    _check_writable(actor)
    ctx.require(Perm.TENANT_MANAGE)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=ctx.tenant.pk)
        before = {"name": tenant.name}
        tenant.name = name
        tenant.full_clean()
        tenant.save(update_fields=["name"])
        record(actor, "tenant.rename", tenant, tenant=tenant, changes=diff(before, {"name": name}))
    return tenant


def do_update_tenant_settings(actor: Actor, ctx: TenantContext, *, name: str,
                              invoice_language: str | None = None) -> Tenant:
    """The tenant settings page: its display name (audited as a rename, as before) and the
    language of its invoices (``tenant.settings``; None or "" keeps it). Only what changed is
    recorded."""
    _check_writable(actor)
    ctx.require(Perm.TENANT_MANAGE)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=ctx.tenant.pk)
        if name != tenant.name:
            tenant = do_rename_tenant(actor, ctx, name=name)
        if invoice_language and invoice_language != tenant.invoice_language:
            before = {"invoice_language": tenant.invoice_language}
            tenant.invoice_language = invoice_language
            tenant.full_clean()
            tenant.save(update_fields=["invoice_language"])
            record(actor, "tenant.settings", tenant, tenant=tenant,
                   changes=diff(before, {"invoice_language": invoice_language}))
    return tenant


def _check_assignable(ctx: TenantContext, role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": _("Unknown role.")})
    if role not in assignable_roles(ctx.role):
        raise ValidationError({"role": _("You cannot give a role above your own.")})


def do_invite(actor: Actor, ctx: TenantContext, *, email: str, role: str) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role``. Returns the invitation and its one-time token."""
    _check_writable(actor)
    ctx.require(Perm.MEMBERS_MANAGE)
    _check_assignable(ctx, role)
    email = email.strip().lower()
    tenant = ctx.tenant
    if Membership.objects.filter(tenant=tenant, user__email__iexact=email).exists():
        raise ValidationError({"email": _("This person is already a member.")})
    if tenant.invitations.pending().filter(email__iexact=email).exists():
        raise ValidationError({"email": _("An invitation to this address is already pending.")})
    token, token_hash = Invitation.new_token()
    invitation = Invitation(tenant=tenant, email=email, role=role, token_hash=token_hash,
                            invited_by=actor.user, expires_at=Invitation.default_expiry())
    invitation.full_clean()
    with transaction.atomic():
        invitation.save()
        record(actor, "invitation.create", invitation, tenant=tenant,
               changes={"email": [None, email], "role": [None, role]})
        transaction.on_commit(lambda: _send_invitation(invitation, token))
    return invitation, token


def _send_invitation(invitation: Invitation, token: str) -> None:
    """In the language of the account that has the address, if it chose one, else in the
    tenant's (its invoice language): not in the inviter's."""
    context = {
        "invitation": invitation,
        "token": token,
        "accept_url": settings.SITE_URL.rstrip("/") + reverse("invitation_accept"),
    }
    with translation.override(languages.language_of(invitation.email, invitation.tenant)):
        send_mail(
            subject=_("You are invited to %(tenant)s") % {"tenant": invitation.tenant.name},
            message=render_to_string("portal/email/invitation.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[invitation.email],
        )


def do_revoke_invitation(actor: Actor, ctx: TenantContext, invitation_id: int) -> Invitation:
    _check_writable(actor)
    ctx.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        invitation = (ctx.tenant.invitations.select_for_update()
                      .filter(pk=invitation_id).first())
        if invitation is None:
            raise ValidationError(_("This invitation does not exist."))
        if invitation.state != "pending":
            raise ValidationError(_("Only a pending invitation can be revoked."))
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record(actor, "invitation.revoke", invitation, tenant=ctx.tenant)
    return invitation


def _user_emails(user: User) -> set[str]:
    emails = {e.lower() for e in EmailAddress.objects.filter(user=user, verified=True)
              .values_list("email", flat=True)}
    return emails


def _all_emails(user: User) -> frozenset[str]:
    return frozenset({*_user_emails(user), *([user.email.lower()] if user.email else [])})


def _end_membership(membership: Membership) -> None:
    """Delete the membership and tell the other domains (after commit: they revoke what it
    granted)."""
    user = membership.user
    events.publish(MembershipEnded(tenant_id=membership.tenant_id, user_id=user.pk,
                                   emails=_all_emails(user)))
    membership.delete()


def _role_changed(membership: Membership, before: str) -> None:
    """Tell the other domains a member's role changed (after commit: they lower what the old
    role granted and the new one does not allow)."""
    if before == membership.role:
        return
    user = membership.user
    events.publish(MembershipRoleChanged(tenant_id=membership.tenant_id, user_id=user.pk,
                                         emails=_all_emails(user), before=before,
                                         after=membership.role))


def do_accept_invitation(actor: Actor, token: str) -> Membership:
    """Join the invitation's tenant. The token is single-use and bound to the invited address."""
    _check_writable(actor)
    user = actor.person
    token = (token or "").strip()
    if not token or len(token) > 200:
        raise ValidationError({"token": _("This invitation code is not valid.")})
    with transaction.atomic():
        invitation = (Invitation.objects.select_for_update().select_related("tenant")
                      .filter(token_hash=Invitation.hash_token(token)).first())
        if invitation is None:
            raise ValidationError({"token": _("This invitation code is not valid.")})
        state = invitation.state
        if state == "accepted":
            raise ValidationError({"token": _("This invitation has already been used.")})
        if state == "revoked":
            raise ValidationError({"token": _("This invitation was revoked.")})
        if state == "expired":
            raise ValidationError({"token": _("This invitation has expired; ask for a new one.")})
        if invitation.email.lower() not in _user_emails(user):
            raise ValidationError({"token": _(
                "This invitation was sent to another email address. Sign in with that address, "
                "or add and verify it on your profile.")})
        if Membership.objects.filter(tenant=invitation.tenant, user=user).exists():
            raise ValidationError({"token": _("You are already a member of this tenant.")})
        membership = Membership.objects.create(tenant=invitation.tenant, user=user,
                                               role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        record(actor, "invitation.accept", invitation, tenant=invitation.tenant,
               changes={"role": [None, invitation.role]})
    return membership


def do_update_profile(actor: Actor, *, first_name: str, last_name: str,
                      language: str | None = None) -> None:
    """Change the actor's own name (audited without a tenant: it belongs to the person) and,
    when given, their language ("" to follow the browser)."""
    _check_writable(actor)
    check_visible_text(first_name=first_name, last_name=last_name)
    user = actor.person
    with transaction.atomic():
        before = {"first_name": user.first_name, "last_name": user.last_name}
        after = {"first_name": first_name, "last_name": last_name}
        user.first_name, user.last_name = first_name, last_name
        user.save(update_fields=["first_name", "last_name"])
        if language is not None:
            before["language"] = languages.user_language(user)
            languages.set_user_language(user, language)
            after["language"] = languages.user_language(user)
        record(actor, "profile.update", user, changes=diff(before, after))



# --------------------------------------------------------------------------- staff enrolment links

def _verified_address(user: User) -> str | None:
    address = (EmailAddress.objects.filter(user=user, verified=True)
               .order_by("-primary", "pk").first())
    return address.email if address is not None else None


def do_issue_mfa_enrolment_link(actor: Actor, user: User) -> MfaEnrolmentLink:
    """Email ``user``, a staff member without an authenticator app, a one-time link to set one
    up, at their verified address. Asked by the staff member themselves (from the page that
    refuses them) or by another staff member (from the admin, which only staff whose session
    passed their own second factor enter). An earlier unused link stops working, so only the
    newest can be used. The audit entry names the address, never the token."""
    _check_writable(actor)
    if actor.user is None or (actor.user.pk != user.pk and not actor.user.is_staff):
        raise PermissionDenied(_("Only staff send enrolment links."))
    if not (user.is_active and user.is_staff):
        raise ValidationError(_("Only active staff need an enrolment link."))
    if user_has_mfa(user):
        raise ValidationError(_("This account already has an authenticator app."))
    email = _verified_address(user)
    if email is None:
        raise ValidationError(_("This account has no verified email address to send the link "
                                "to."))
    token, token_hash = MfaEnrolmentLink.new_token()
    with transaction.atomic():
        MfaEnrolmentLink.objects.usable().filter(user=user).update(expires_at=timezone.now())
        link = MfaEnrolmentLink.objects.create(
            user=user, email=email, token_hash=token_hash, issued_by=actor.user,
            expires_at=MfaEnrolmentLink.default_expiry())
        record(actor, "account.mfa_enrolment_link.issue", user,
               changes={"email": [None, email]})
        transaction.on_commit(lambda: _send_enrolment_link(link, token))
    return link


def _send_enrolment_link(link: MfaEnrolmentLink, token: str) -> None:
    context = {
        "link": link,
        "token": token,
        "enrol_url": settings.SITE_URL.rstrip("/") + reverse("mfa_enrolment"),
        "self_service": link.issued_by_id == link.user_id,
    }
    with translation.override(languages.language_of(link.email)):
        send_mail(
            subject=_("Set up two-factor authentication for your staff account"),
            message=render_to_string("portal/email/mfa_enrolment.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[link.email],
        )


def do_use_mfa_enrolment_link(actor: Actor, token: str) -> MfaEnrolmentLink:
    """Spend an enrolment link: it works once, before it expires, for the account it was sent
    to. The caller then lets the session set up the authenticator (``portal.mfa``)."""
    _check_writable(actor)
    invalid = ValidationError({"token": _("This enrolment code is not valid.")})
    token = (token or "").strip()
    if not token or len(token) > 200 or actor.user is None:
        raise invalid
    with transaction.atomic():
        link = (MfaEnrolmentLink.objects.select_for_update()
                .filter(token_hash=MfaEnrolmentLink.hash_token(token)).first())
        if link is None:
            raise invalid
        if link.user_id != actor.user.pk:
            raise ValidationError({"token": _(
                "This enrolment link was sent to another account. Sign in as that account "
                "to use it.")})
        if link.state == "used":
            raise ValidationError({"token": _("This enrolment link has already been used.")})
        if link.state == "expired":
            raise ValidationError({"token": _(
                "This enrolment link has expired; ask for a new one.")})
        if user_has_mfa(actor.user):
            raise ValidationError({"token": _("You already have an authenticator app.")})
        link.used_at = timezone.now()
        link.save(update_fields=["used_at"])
        record(actor, "account.mfa_enrolment_link.use", actor.user,
               changes={"email": [None, link.email]})
    return link

def _owner_count(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).count()


def _locked_membership(ctx: TenantContext, membership_id: int) -> Membership:
    # Lock every membership of the tenant: last-owner checks must see a stable set.
    rows = list(Membership.objects.select_for_update().filter(tenant=ctx.tenant).order_by("pk"))
    for row in rows:
        if row.pk == membership_id:
            return row
    raise ValidationError(_("This member does not exist."))


def do_change_role(actor: Actor, ctx: TenantContext, membership_id: int, *,
                   role: str) -> Membership:
    _check_writable(actor)
    ctx.require(Perm.MEMBERS_MANAGE)
    _check_assignable(ctx, role)
    with transaction.atomic():
        membership = _locked_membership(ctx, membership_id)
        if membership.role == Role.OWNER and ctx.role != Role.OWNER:
            raise ValidationError({"role": _("Only an owner can change an owner's role.")})
        if (membership.role == Role.OWNER and role != Role.OWNER
                and _owner_count(ctx.tenant) == 1):
            raise ValidationError({"role": _(
                "This is the last owner. Transfer ownership to someone else first.")})
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        record(actor, "membership.role_change", membership, tenant=ctx.tenant,
               changes={"role": [before, role], "user": [None, membership.user.email]})
        _role_changed(membership, before)
    return membership


def do_remove_member(actor: Actor, ctx: TenantContext, membership_id: int) -> None:
    _check_writable(actor)
    ctx.require(Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        membership = _locked_membership(ctx, membership_id)
        if membership.role == Role.OWNER and ctx.role != Role.OWNER:
            raise ValidationError(_("Only an owner can remove an owner."))
        if membership.role == Role.OWNER and _owner_count(ctx.tenant) == 1:
            raise ValidationError(_("The last owner cannot be removed."))
        record(actor, "membership.remove", membership, tenant=ctx.tenant,
               changes={"user": [membership.user.email, None], "role": [membership.role, None]})
        _end_membership(membership)


def do_leave_tenant(actor: Actor, ctx: TenantContext) -> None:
    _check_writable(actor)
    if ctx.membership is None:
        raise PermissionDenied
    with transaction.atomic():
        membership = _locked_membership(ctx, ctx.membership.pk)
        if membership.role == Role.OWNER and _owner_count(ctx.tenant) == 1:
            raise ValidationError(_(
                "You are the last owner. Transfer ownership before leaving."))
        record(actor, "membership.leave", membership, tenant=ctx.tenant,
               changes={"role": [membership.role, None]})
        _end_membership(membership)


def do_transfer_ownership(actor: Actor, ctx: TenantContext, membership_id: int) -> Membership:
    """Make another member the owner; the current owner stays on as admin."""
    _check_writable(actor)
    ctx.require(Perm.OWNERSHIP_TRANSFER)
    if ctx.membership is None:
        raise PermissionDenied
    with transaction.atomic():
        target = _locked_membership(ctx, membership_id)
        me = _locked_membership(ctx, ctx.membership.pk)
        if target.pk == me.pk:
            raise ValidationError({"member": _("You already own this tenant.")})
        before_target, before_me = target.role, me.role
        target.role = Role.OWNER
        target.save(update_fields=["role"])
        me.role = Role.ADMIN
        me.save(update_fields=["role"])
        _role_changed(target, before_target)
        _role_changed(me, before_me)
        record(actor, "tenant.transfer_ownership", ctx.tenant, tenant=ctx.tenant,
               changes={"owner": [me.user.email, target.user.email],
                        "new_owner_previous_role": [before_target, Role.OWNER]})
    return target


def do_suspend_tenant(actor: Actor, tenant: Tenant, *, reason: str) -> Tenant:
    """Staff: members keep reading and paying, but cannot create or change anything."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": _("Give the reason; the tenant's members will see it.")})
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = {"suspended": tenant.is_suspended, "reason": tenant.suspension_reason}
        tenant.suspended_at = tenant.suspended_at or timezone.now()
        tenant.suspension_reason = reason[:300]
        clean_text_fields(tenant, ["suspension_reason"])
        tenant.save(update_fields=["suspended_at", "suspension_reason"])
        record(actor, "tenant.suspend", tenant, tenant=tenant,
               changes=diff(before, {"suspended": True, "reason": tenant.suspension_reason}))
    return tenant


def do_unsuspend_tenant(actor: Actor, tenant: Tenant) -> Tenant:
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if not tenant.is_suspended:
            return tenant
        before = {"suspended": True, "reason": tenant.suspension_reason}
        tenant.suspended_at = None
        tenant.suspension_reason = ""
        tenant.save(update_fields=["suspended_at", "suspension_reason"])
        record(actor, "tenant.unsuspend", tenant, tenant=tenant,
               changes=diff(before, {"suspended": False, "reason": ""}))
    return tenant


def do_set_quota(actor: Actor, tenant: Tenant, **limits: int | None) -> Tenant:
    """Staff: per-tenant limits; None falls back to the platform-wide default."""
    fields = {f"quota_{k}": v for k, v in limits.items()}
    unknown = set(fields) - {"quota_clusters", "quota_vcpu", "quota_memory_gib", "quota_gpus"}
    if unknown:
        raise ValueError(f"unknown quota {sorted(unknown)}")
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = {k: getattr(tenant, k) for k in fields}
        for key, value in fields.items():
            setattr(tenant, key, value)
        tenant.full_clean()
        tenant.save(update_fields=list(fields))
        record(actor, "tenant.quota", tenant, tenant=tenant, changes=diff(before, fields))
    return tenant


# --------------------------------------------------------------------------- announcements


def do_save_announcement(announcement: Announcement) -> Announcement:
    """Store a banner (new or edited). Every page reads the cached announcements, so the cache
    is dropped once the change commits; the admin saves the tenants it is for in the same
    transaction, so readers never rebuild it from half of the change. Safe to repeat."""
    with transaction.atomic():
        announcement.save()
        transaction.on_commit(forget_announcements)
    return announcement


def do_delete_announcements(announcements: QuerySet[Announcement]) -> int:
    """Withdraw banners (one or a selection); pages stop showing them once it commits. Returns
    how many went; repeating removes nothing more."""
    with transaction.atomic():
        count, _by_model = announcements.delete()
        transaction.on_commit(forget_announcements)
    return count


def do_save_branding(branding: Branding) -> Branding:
    """Store the portal's branding (its one row). Every page reads the cached branding, so the
    cache is dropped once the change commits. Safe to repeat."""
    branding.pk = Branding.SINGLETON
    branding.updated_at = timezone.now()
    with transaction.atomic():
        branding.save()
        transaction.on_commit(forget_branding)
    return branding

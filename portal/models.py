"""Tenancy (tenants, memberships, invitations) and the audit log."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.caching import get_or_load
from portal.permissions import Role
from portal.validators import validate_visible_text

if TYPE_CHECKING:
    from django.contrib.auth.models import User

TENANT_SLUG_MAX = 46
slug_validator = RegexValidator(
    r"^[a-z][a-z0-9]*$",
    _("Use lowercase letters and digits only, starting with a letter (no dashes)."),
    code="invalid_slug",
)
# Slugs whose namespace the platform keeps for itself: ``tenant-root`` is Cozystack's root tenant.
RESERVED_TENANT_SLUGS = frozenset({"root"})


def validate_unreserved_slug(value: str) -> None:
    if value in RESERVED_TENANT_SLUGS:
        raise ValidationError(
            _("“%(slug)s” is reserved: the platform's own tenant lives in tenant-%(slug)s."),
            code="reserved_slug", params={"slug": value})


QUOTA_MAX = {"clusters": 1_000, "vcpu": 100_000, "memory_gib": 1_000_000, "gpus": 10_000}
"""What staff may set a tenant's quota to, per dimension: a whole number from 0 to this."""


def language_choices() -> list[tuple[str, str]]:
    """The languages the portal speaks (``settings.LANGUAGES``), for a model field's choices."""
    return [(code, str(name)) for code, name in settings.LANGUAGES]


class TenantQuerySet(models.QuerySet["Tenant"]):
    def for_user(self, user: User) -> TenantQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Tenant(models.Model):
    slug = models.CharField(
        _("slug"), max_length=TENANT_SLUG_MAX, unique=True,
        validators=[slug_validator, validate_unreserved_slug,
                    MaxLengthValidator(TENANT_SLUG_MAX)],
        help_text=_("Used in URLs and the platform namespace tenant-<slug>. Cannot change."),
    )
    name = models.CharField(_("display name"), max_length=100,
                            validators=[validate_visible_text])
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=300, blank=True,
                                         validators=[validate_visible_text])
    quota_clusters = models.PositiveIntegerField(null=True, blank=True)
    quota_vcpu = models.PositiveIntegerField(null=True, blank=True)
    quota_memory_gib = models.PositiveIntegerField(null=True, blank=True)
    quota_gpus = models.PositiveIntegerField(null=True, blank=True)
    invoice_language = models.CharField(
        _("invoice language"), max_length=8, choices=language_choices,
        # db_default too: rows written by code (or migration states) that do not know the
        # column yet get the same language.
        default=settings.LANGUAGE_CODE, db_default=settings.LANGUAGE_CODE,
        help_text=_("The language of the tenant's invoices and their PDFs, and of its emails to "
                    "people who have not chosen a language."))

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Quotas within what staff may set (``QUOTA_MAX``); empty means the default."""
        errors = {}
        for dimension, hi in QUOTA_MAX.items():
            value = getattr(self, f"quota_{dimension}")
            if value is not None and not (isinstance(value, int) and 0 <= value <= hi):
                errors[f"quota_{dimension}"] = ValidationError(
                    _("A quota is a whole number from %(lo)s to %(hi)s."),
                    code="out_of_range", params={"lo": 0, "hi": hi})
        if errors:
            raise ValidationError(errors)

    @property
    def namespace(self) -> str:
        return f"tenant-{self.slug}"

    @property
    def is_suspended(self) -> bool:
        return self.suspended_at is not None

    def quota(self) -> dict[str, int]:
        """Effective limits: the tenant's own where set, else the platform-wide default."""
        default = settings.TENANT_DEFAULT_QUOTA
        return {
            "clusters": self.quota_clusters if self.quota_clusters is not None
            else default["clusters"],
            "vcpu": self.quota_vcpu if self.quota_vcpu is not None else default["vcpu"],
            "memory_gib": self.quota_memory_gib if self.quota_memory_gib is not None
            else default["memory_gib"],
            "gpus": self.quota_gpus if self.quota_gpus is not None else default["gpus"],
        }


class UserProfile(models.Model):
    """What a person chose for themselves, beside Django's user: the language of their pages
    (while signed in) and of the emails the portal sends them. Made when first needed."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                primary_key=True, related_name="profile")
    language = models.CharField(
        _("language"), max_length=8, blank=True, choices=language_choices,
        help_text=_("Pages and emails in this language; empty: the browser's language."))

    def __str__(self) -> str:
        return f"{self.user} ({self.language or '-'})"


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values),
                                   name="membership_role_valid"),
        ]
        ordering = ["tenant", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SingleUseLink:
    """A link sent by email that works once before ``expires_at``: only its token's hash is
    stored (``token_hash``), and the token lives ``ttl_setting`` hours."""

    ttl_setting: str

    @classmethod
    def new_token(cls) -> tuple[str, str]:
        token = secrets.token_urlsafe(32)
        return token, _hash_token(token)

    @classmethod
    def hash_token(cls, token: str) -> str:
        return _hash_token(token)

    @classmethod
    def default_expiry(cls) -> datetime:
        return timezone.now() + timedelta(hours=getattr(settings, cls.ttl_setting))


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True,
                           expires_at__gt=timezone.now())


class Invitation(SingleUseLink, models.Model):
    """An invitation by email. Only the token's hash is stored; the token travels in the email."""

    ttl_setting = "INVITATION_TTL_HOURS"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(_("email"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.tenant} ({self.role})"

    @property
    def state(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class MfaEnrolmentLinkQuerySet(models.QuerySet["MfaEnrolmentLink"]):
    def usable(self) -> MfaEnrolmentLinkQuerySet:
        return self.filter(used_at__isnull=True, expires_at__gt=timezone.now())


class MfaEnrolmentLink(SingleUseLink, models.Model):
    """A one-time link with which a staff member sets up their first authenticator app, sent to
    the account's verified address (``portal.mfa``). Only the token's hash is stored; the token
    travels in the email, in the link's fragment, which browsers never send to a server."""

    ttl_setting = "MFA_ENROLMENT_LINK_TTL_HOURS"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="+")
    email = models.EmailField(_("email"))
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                  null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    objects = MfaEnrolmentLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def state(self) -> str:
        if self.used_at:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "usable"


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs):
        raise PermissionError("audit entries are append-only")

    def delete(self):
        raise PermissionError("audit entries are append-only")


class AuditEntry(models.Model):
    """One change made by a person, a token, staff or the system. Append-only."""

    class Via(models.TextChoices):
        WEB = "web", _("Web")
        API = "api", _("API")
        ADMIN = "admin", _("Admin")
        SYSTEM = "system", _("System")

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+")
    actor_label = models.CharField(max_length=254)
    via = models.CharField(max_length=8, choices=Via.choices)
    token_name = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="audit_entries")
    tenant_slug = models.CharField(max_length=TENANT_SLUG_MAX, blank=True)
    verb = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["tenant", "-at"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.verb} {self.object_repr}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise PermissionError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("audit entries are append-only")


class Announcement(models.Model):
    """A banner shown to every tenant, or only to the selected ones, between two instants.

    Staff change them through ``portal.actions`` (``do_save_announcement``,
    ``do_delete_announcements``), which drop the cached announcements pages read.
    """

    class Level(models.TextChoices):
        INFO = "info", _("Information")
        WARNING = "warning", _("Warning")
        DANGER = "danger", _("Incident")

    message = models.CharField(_("message"), max_length=500,
                               validators=[validate_visible_text])
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True)
    tenants = models.ManyToManyField(Tenant, blank=True, related_name="announcements",
                                     help_text=_("Leave empty to show it to every tenant."))

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return self.message[:60]


ANNOUNCEMENTS_CACHE_KEY = "portal:announcements:v1"
ANNOUNCEMENTS_CACHE_SECONDS = 30
_ANNOUNCEMENT_FIELDS = ("id", "message", "level", "starts_at", "ends_at")


def _announcements_not_over() -> list[tuple[tuple[Any, ...], frozenset[int]]]:
    """Every announcement not over yet (started or not) with the tenants it is for, cached
    briefly: every page shows them. Plain values, so the cache holds no model pickles. The
    actions that change announcements drop the entry after commit (``forget_announcements``)."""

    def load() -> list[tuple[tuple[Any, ...], frozenset[int]]]:
        rows = list(Announcement.objects.filter(models.Q(ends_at__isnull=True)
                                                | models.Q(ends_at__gt=timezone.now()))
                    .values_list(*_ANNOUNCEMENT_FIELDS))
        targets: dict[int, set[int]] = {}
        if rows:
            for announcement_id, tenant_id in Announcement.tenants.through.objects.filter(
                    announcement_id__in=[row[0] for row in rows]).values_list(
                    "announcement_id", "tenant_id"):
                targets.setdefault(announcement_id, set()).add(tenant_id)
        return [(row, frozenset(targets.get(row[0], ()))) for row in rows]

    return get_or_load(ANNOUNCEMENTS_CACHE_KEY, load, ANNOUNCEMENTS_CACHE_SECONDS)


def forget_announcements() -> None:
    cache.delete(ANNOUNCEMENTS_CACHE_KEY)


def active_announcements(tenant: Tenant | None) -> list[Announcement]:
    """What runs now for everyone, or for ``tenant`` among others; newest first."""
    now = timezone.now()
    shown = []
    for values, targets in _announcements_not_over():
        row = Announcement(**dict(zip(_ANNOUNCEMENT_FIELDS, values, strict=True)))
        if row.starts_at > now or (row.ends_at is not None and row.ends_at <= now):
            continue
        if not targets or (tenant is not None and tenant.pk in targets):
            shown.append(row)
    return shown


# --------------------------------------------------------------------------- API


API_TOKEN_PREFIX = "kp_"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    """A personal access token for the REST API. Only its SHA-256 is stored.

    The token acts as its user, with the user's current role in each tenant, narrowed by its
    ``scope`` (read-only tokens cannot change anything nor fetch kubeconfigs) and, when
    ``tenant`` is set, limited to that one tenant.
    """

    class Scope(models.TextChoices):
        READ = "read", _("Read")
        READ_WRITE = "read_write", _("Read and write")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100, validators=[validate_visible_text])
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False,
                              help_text=_("The first characters, to recognise the token."))
    scope = models.CharField(_("scope"), max_length=12, choices=Scope.choices,
                             default=Scope.READ)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, null=True, blank=True,
                               related_name="api_tokens",
                               help_text=_("Leave empty to reach every tenant you belong to."))
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires"))
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(scope__in=["read", "read_write"]),
                                   name="api_token_scope_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def new_secret(cls) -> tuple[str, str]:
        """A fresh token (256 random bits after a recognisable prefix) and its hash."""
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        return token, _hash_token(token)

    @classmethod
    def hash_token(cls, token: str) -> str:
        return _hash_token(token)

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.is_expired:
            return "expired"
        return "active"

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.READ_WRITE


class IdempotencyRecord(models.Model):
    """The first response to a write sent with an ``Idempotency-Key``, replayed on retries.

    Inserted in the same transaction as the write it protects: a concurrent retry with the same
    key waits on the unique constraint, then finds the stored response instead of writing again.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(default=0)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
        ]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


# --------------------------------------------------------------------------- branding

hex_colour_validator = RegexValidator(
    r"^#[0-9a-fA-F]{6}$", _("Enter a colour as # and six hexadecimal digits, e.g. #1f6feb."),
    code="invalid_colour")


def validate_visible_lines(value: Any) -> None:
    """``validate_visible_text`` on each line of a text that may have several."""
    if isinstance(value, str):
        for line in value.replace("\r\n", "\n").split("\n"):
            validate_visible_text(line)


class Branding(models.Model):
    """How the portal presents itself: one row (``pk=1``), edited by staff in the admin.

    Every empty field falls back to the settings (``BRAND_*``). The logo and the favicon are
    kept in the database (every web replica serves them, no shared volume), validated and,
    for SVG, sanitized by ``portal.branding`` before they are stored; they are only ever shown
    as images (``<img>``, ``<link rel=icon>``), served with a policy that runs nothing.
    """

    SINGLETON = 1

    product_name = models.CharField(_("product name"), max_length=60, blank=True,
                                    validators=[validate_visible_text])
    logo = models.BinaryField(_("logo"), blank=True, default=b"", editable=False)
    logo_type = models.CharField(max_length=32, blank=True, editable=False)
    favicon = models.BinaryField(_("favicon"), blank=True, default=b"", editable=False)
    favicon_type = models.CharField(max_length=32, blank=True, editable=False)
    primary_colour = models.CharField(_("primary colour"), max_length=7, blank=True,
                                      validators=[hex_colour_validator])
    support_email = models.EmailField(_("support email"), blank=True)
    support_url = models.URLField(_("support page"), blank=True,
                                  help_text=_("An https:// address."))
    legal_footer = models.TextField(_("legal footer"), max_length=500, blank=True,
                                    validators=[validate_visible_lines],
                                    help_text=_("Shown at the foot of every page and invoice."))
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("branding")
        verbose_name_plural = _("branding")
        constraints = [models.CheckConstraint(condition=models.Q(pk=1),
                                              name="branding_single_row")]

    def __str__(self) -> str:
        return str(_("Branding"))

    def clean(self) -> None:
        if self.support_url and not self.support_url.lower().startswith("https://"):
            raise ValidationError({"support_url": _("Use an https:// address.")})


# --------------------------------------------------------------------------- notifications


class NotificationPreference(models.Model):
    """A person's choice for one kind of event (``portal.notifications.EventType``): an email
    or none. No row means the event type's default."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="notification_preferences")
    event_type = models.CharField(max_length=40)
    email = models.BooleanField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "event_type"],
                                    name="notification_preference_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.event_type}: {'email' if self.email else 'none'}"

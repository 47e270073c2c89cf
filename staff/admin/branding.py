"""Branding in the admin: one row, edited on its change page (the list goes straight there).

Images are uploaded through file fields of the form, checked and, for SVG, sanitized by
``portal.branding`` before they are stored; the audit entry names their type and size.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from portal import actions, branding
from portal.models import Branding
from staff.admin_site import AuditedAdminMixin

IMAGE_KINDS = ("logo", "favicon")


class BrandingForm(forms.ModelForm):
    logo_file = forms.FileField(
        label=gettext_lazy("Upload a logo"), required=False,
        help_text=gettext_lazy("PNG or SVG. It is shown in the page header and on invoices."))
    clear_logo = forms.BooleanField(label=gettext_lazy("Remove the logo"), required=False)
    favicon_file = forms.FileField(
        label=gettext_lazy("Upload a favicon"), required=False,
        help_text=gettext_lazy("PNG, SVG or ICO, shown in the browser's tab."))
    clear_favicon = forms.BooleanField(label=gettext_lazy("Remove the favicon"), required=False)
    support_url = forms.URLField(label=gettext_lazy("support page"), required=False,
                                 assume_scheme="https", max_length=200,
                                 help_text=gettext_lazy("An https:// address."))

    class Meta:
        model = Branding
        fields = ["product_name", "primary_colour", "support_email", "support_url",
                  "legal_footer"]
        widgets = {"primary_colour": forms.TextInput(attrs={"placeholder": "#066fd1",
                                                            "size": 8})}

    def _clean_upload(self, kind: str) -> tuple[bytes, str] | None:
        upload = self.cleaned_data.get(f"{kind}_file")
        if not upload:
            return None
        limit = int(settings.BRAND_MAX_IMAGE_BYTES)
        data = upload.read(limit + 1)
        return branding.clean_image(data, kind=kind)

    def clean_logo_file(self) -> tuple[bytes, str] | None:
        return self._clean_upload("logo")

    def clean_favicon_file(self) -> tuple[bytes, str] | None:
        return self._clean_upload("favicon")

    def save(self, commit: bool = True) -> Any:
        instance = super().save(commit=False)
        for kind in IMAGE_KINDS:
            uploaded = self.cleaned_data.get(f"{kind}_file")
            if uploaded:
                setattr(instance, kind, uploaded[0])
                setattr(instance, f"{kind}_type", uploaded[1])
            elif self.cleaned_data.get(f"clear_{kind}"):
                setattr(instance, kind, b"")
                setattr(instance, f"{kind}_type", "")
        if commit:
            actions.do_save_branding(instance)
        return instance


@admin.register(Branding)
class BrandingAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """The product name, logo, favicon, primary colour, support contacts and legal footer.
    Empty fields fall back to the ``BRAND_*`` settings."""

    form = BrandingForm
    readonly_fields = ["current_logo", "current_favicon", "updated_at"]
    fieldsets = [
        (None, {"fields": ["product_name", "primary_colour"]}),
        (gettext_lazy("Images"), {"fields": ["current_logo", "logo_file", "clear_logo",
                                             "current_favicon", "favicon_file",
                                             "clear_favicon"]}),
        (gettext_lazy("Support and legal"), {"fields": ["support_email", "support_url",
                                                        "legal_footer", "updated_at"]}),
    ]

    @admin.display(description=gettext_lazy("Current logo"))
    def current_logo(self, obj: Branding) -> str:
        url = branding.current().logo_url if obj.logo_type else ""
        return format_html('<img src="{}" alt="" height="48">', url) if url else "—"

    @admin.display(description=gettext_lazy("Current favicon"))
    def current_favicon(self, obj: Branding) -> str:
        url = branding.current().favicon_url if obj.favicon_type else ""
        return format_html('<img src="{}" alt="" height="48">', url) if url else "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not Branding.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        row = Branding.objects.filter(pk=Branding.SINGLETON).first()
        if row is None:
            return HttpResponseRedirect(reverse("admin:portal_branding_add"))
        return HttpResponseRedirect(reverse("admin:portal_branding_change", args=[row.pk]))

    def save_model(self, request: HttpRequest, obj: Branding, form: Any, change: bool) -> None:
        actions.do_save_branding(obj)

    def audit_changes(self, obj: Any, event: str, changes: dict[str, list[Any]]
                      ) -> dict[str, list[Any]]:
        for kind in IMAGE_KINDS:
            if f"{kind}_file" in changes:  # what was stored, not the bytes
                stored = bytes(getattr(obj, kind) or b"")
                changes[f"{kind}_file"] = [None, f"{getattr(obj, f'{kind}_type')}, "
                                                 f"{len(stored)} bytes"]
        return changes

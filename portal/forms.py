from __future__ import annotations

from typing import TypeVar

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.models import (
    TENANT_SLUG_MAX,
    AuditEntry,
    Tenant,
    language_choices,
    slug_validator,
    validate_unreserved_slug,
)
from portal.permissions import Role
from portal.validators import validate_visible_text

_Field = TypeVar("_Field", bound=forms.Field)


def declared_field(form: forms.BaseForm, name: str, kind: type[_Field]) -> _Field:
    """The form's own copy of its field ``name``, as the kind of field it was declared, for
    setting what only that kind has (choices, a queryset) when the form is made."""
    field = form.fields[name]
    if not isinstance(field, kind):
        raise TypeError(f"{type(form).__name__}.{name} is not a {kind.__name__}")
    return field


class TenantCreateForm(forms.Form):
    name = forms.CharField(label=_("Display name"), max_length=100)
    slug = forms.CharField(
        label=_("Slug"), max_length=TENANT_SLUG_MAX,
        validators=[slug_validator, validate_unreserved_slug],
        help_text=_("Lowercase letters and digits, starting with a letter, at most 46. "
                    "Becomes the platform namespace tenant-<slug>; it cannot change later."),
    )

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_("This slug is already taken."))
        return slug


class TenantRenameForm(forms.Form):
    name = forms.CharField(label=_("Display name"), max_length=100)


class TenantSettingsForm(TenantRenameForm):
    invoice_language = forms.ChoiceField(
        label=_("Invoice language"), choices=language_choices, required=False,
        help_text=_("Invoices and their PDFs are written in this language, and so are the "
                    "tenant's emails to people who have not chosen a language."))


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("Email"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=[])

    def __init__(self, *args, roles: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Role.choices)
        declared_field(self, "role", forms.ChoiceField).choices = [(r, labels[r]) for r in roles]
        self.fields["role"].initial = Role.MEMBER if Role.MEMBER in roles else None


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=[])

    def __init__(self, *args, roles: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labels = dict(Role.choices)
        declared_field(self, "role", forms.ChoiceField).choices = [(r, labels[r]) for r in roles]


class TransferForm(forms.Form):
    member = forms.TypedChoiceField(label=_("New owner"), coerce=int, choices=[])
    confirm = forms.CharField(label=_("Type the tenant slug to confirm"), max_length=64)

    def __init__(self, *args, members: list[tuple[int, str]], slug: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slug = slug
        declared_field(self, "member", forms.TypedChoiceField).choices = members

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.slug:
            raise forms.ValidationError(_("Type the slug exactly to confirm."))
        return value


class AcceptInvitationForm(forms.Form):
    token = forms.CharField(label=_("Invitation code"), max_length=200,
                            widget=forms.TextInput(attrs={"autocomplete": "off"}))


class MfaEnrolmentForm(forms.Form):
    token = forms.CharField(label=_("Enrolment code"), max_length=200,
                            widget=forms.TextInput(attrs={"autocomplete": "off"}))


class ProfileForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False,
                                 validators=[validate_visible_text])
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False,
                                validators=[validate_visible_text])
    language = forms.ChoiceField(
        label=_("Language"), required=False,
        choices=lambda: [("", _("The browser's language")), *language_choices()],
        help_text=_("The language of the pages while you are signed in, and of the emails the "
                    "portal sends you."))


class AuditFilterForm(forms.Form):
    verb = forms.CharField(label=_("Action"), max_length=64, required=False)
    actor = forms.CharField(label=_("Who"), max_length=254, required=False)
    via = forms.ChoiceField(label=_("Via"), required=False,
                            choices=[("", _("Any")), *AuditEntry.Via.choices])
    since = forms.DateField(label=_("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("Until"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))


class NotificationPreferencesForm(forms.Form):
    """One switch per event type: an email, or none (``portal.notifications``)."""

    def __init__(self, *args, kinds, initial_choices: dict[str, bool], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kinds = list(kinds)
        for kind in self.kinds:
            self.fields[self.field_name(kind.type)] = forms.BooleanField(
                label=kind.label, help_text=kind.description, required=False,
                initial=initial_choices.get(kind.type, kind.default_email))

    @staticmethod
    def field_name(event_type: str) -> str:
        return "email_" + event_type.replace(".", "__")

    def choices(self) -> dict[str, bool]:
        return {kind.type: bool(self.cleaned_data.get(self.field_name(kind.type)))
                for kind in self.kinds}

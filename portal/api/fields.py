"""Serializer building blocks shared by every app's API: strict input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers


def answer_cache(context: Mapping[str, Any]) -> dict[str, Any]:
    """A serializer's context, to keep what one answer computes once for all its objects.
    The API's views pass a dict (DRF's stubs type the context as read-only)."""
    if not isinstance(context, dict):
        raise TypeError("serializer context must be a dict to cache in it")
    return context


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know (the platform silently ignores typos; we do not)."""

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, list[serializers.ErrorDetail]] = {}
        if isinstance(data, Mapping):
            for key in sorted(str(k) for k in data if k not in self.fields):
                errors[key] = [serializers.ErrorDetail(_("Unknown field."), code="unknown_field")]
            for key in sorted(k for k in data if k in self.fields and self.fields[k].read_only):
                errors[key] = [serializers.ErrorDetail(_("This field cannot be set."),
                                                       code="read_only")]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError({**exc.detail, **errors})
        if errors:
            raise serializers.ValidationError(errors)
        return value

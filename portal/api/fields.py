"""Serializer building blocks shared by every app's API: strict input, bounded free-form JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 20


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


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise serializers.ValidationError(
            _("Nested more than %(n)d levels deep.") % {"n": MAX_JSON_DEPTH}, code="too_deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(_("Text may not contain NUL characters."),
                                              code="null_characters_not_allowed")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


@extend_schema_field({"type": "object", "additionalProperties": True})
class FreeFormObjectField(serializers.JSONField):
    """A JSON object of any shape, bounded in size and depth, storable as-is."""

    default_error_messages = {
        "not_object": gettext_lazy("Must be a JSON object (a mapping of keys to values)."),
        "too_large": gettext_lazy("At most %(max)d bytes of JSON."),
    }

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        _check_json(value)
        if len(json.dumps(value)) > MAX_JSON_BYTES:
            self.fail("too_large", max=MAX_JSON_BYTES)
        return value

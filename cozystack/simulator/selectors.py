"""Label and field selectors with apiserver semantics (`!=` also matches absent labels)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_EQ_RE = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*(.*)$")
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects that lack the label entirely.
        return not present or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside an `in (...)` value list."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term.strip() for term in terms if term.strip()]


def _bad(text: str, why: str) -> ApiError:
    return ApiError(400, f"unable to parse requirement: {why}: {text!r}", "BadRequest")


def _check_value(term: str, value: str) -> str:
    value = value.strip()
    if not _VALUE_RE.match(value) or len(value) > 63:
        raise _bad(term, f"invalid label value: {value!r}")
    return value


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h`; raises 400 BadRequest on junk."""
    if not text:
        return []
    requirements = []
    for term in _split_terms(text):
        if term.startswith("!"):
            key = term[1:].strip()
            if not _KEY_RE.match(key):
                raise _bad(term, "invalid label key")
            requirements.append(Requirement(key, "!exists"))
            continue
        set_match = _SET_RE.match(term)
        if set_match:
            values = tuple(
                _check_value(term, v) for v in set_match.group(4).split(",") if v.strip()
            )
            requirements.append(Requirement(set_match.group(1), set_match.group(3), values))
            continue
        eq_match = _EQ_RE.match(term)
        if eq_match:
            op = "=" if eq_match.group(3) in ("=", "==") else "!="
            value = _check_value(term, eq_match.group(4))
            requirements.append(Requirement(eq_match.group(1), op, (value,)))
            continue
        if _KEY_RE.match(term):
            requirements.append(Requirement(term, "exists"))
            continue
        raise _bad(term, "found unexpected token")
    return requirements


def labels_match(requirements: list[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(req.matches(labels) for req in requirements)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    equal: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        current: Any = obj
        for part in self.path.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        actual = "" if current is None else str(current)
        return (actual == self.value) == self.equal


def parse_field_selector(text: str | None, supported: tuple[str, ...]) -> list[FieldRequirement]:
    """Only the fields the resource supports are accepted, like the apiserver (400 otherwise)."""
    if not text:
        return []
    requirements = []
    for term in _split_terms(text):
        match = re.match(r"^([A-Za-z.]+)\s*(==|!=|=)\s*(.*)$", term)
        if not match:
            raise ApiError(400, f"invalid field selector: {term!r}", "BadRequest")
        path, op, value = match.groups()
        if path not in supported:
            raise ApiError(400, f"field label not supported: {path}", "BadRequest")
        requirements.append(FieldRequirement(path, op != "!=", value.strip()))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    return all(req.matches(obj) for req in requirements)

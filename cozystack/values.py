"""The one loader and checker for add-on values documents (``valuesOverride``).

A values override is plain data merged over a chart's values. Read naively it is a way in:
a few hundred bytes of nested YAML anchors expand to gigabytes when the result is copied,
stored or printed (an alias bomb); a document nested hundreds of levels deep exhausts the
recursion limit; an integer of 5,000 digits is more than Python converts; and ``.inf`` or
``.nan`` can be neither stored (PostgreSQL's JSON refuses them) nor sent to the platform.
So every values document goes through this module, the YAML boxes of the forms and the API's
JSON alike, and the platform rules check specs with it whatever made them:

* ``load_yaml(text)`` refuses more than ``MAX_BYTES`` of input, then anchors and aliases as the
  parser meets them (before anything is composed, let alone expanded: a values override has
  no use for them) and collections nested more than ``MAX_DEPTH`` deep, and checks each
  scalar as it is constructed;
* ``check_document(value)`` applies the same rules to a document that is already parsed.

Either raises ``ValuesError``, whose ``code`` and ``params`` let the Django layer word it for a
person (``message`` is the plain English used by the platform rules). Plain Python and PyYAML,
no Django.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent

MAX_BYTES = 64 * 1024
MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# A 64-bit integer written in any YAML notation (binary is the longest) has fewer characters.
_MAX_INT_TEXT = 70

_MESSAGES = {
    "too_large": "Custom values may be at most {max_kb} KB.",
    "alias": "Anchors and aliases (& and *) are not allowed in custom values; write each value "
             "out.",
    "too_deep": "Custom values may be nested at most {max_depth} levels deep.",
    "not_finite": "Numbers in custom values must be finite (no .inf or .nan).",
    "int_too_large": "Whole numbers in custom values must fit in 64 bits (from {min} to {max}).",
    "nul": "Text in custom values may not contain NUL characters.",
    "syntax": "This is not valid YAML: {problem}.",
}


class ValuesError(ValueError):
    """A refused values document: ``code`` says why, ``line``/``column`` (1-based) where, when
    it came from YAML text."""

    def __init__(self, code: str, params: dict[str, Any] | None = None, *,
                 line: int | None = None, column: int | None = None) -> None:
        self.code = code
        self.params = params or {}
        self.line = line
        self.column = column
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = _MESSAGES[self.code].format(**self.params)
        if self.line is None:
            return text
        return f"{text[:-1]} (line {self.line}, column {self.column})."


def _error(code: str, mark: Any = None, **params: Any) -> ValuesError:
    defaults = {"too_large": {"max_kb": MAX_BYTES // 1024}, "too_deep": {"max_depth": MAX_DEPTH},
                "int_too_large": {"min": INT_MIN, "max": INT_MAX}}
    return ValuesError(code, {**defaults.get(code, {}), **params},
                       line=mark.line + 1 if mark is not None else None,
                       column=mark.column + 1 if mark is not None else None)


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (pure Python: its composer can be checked event by event)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's stubs leave the parser untyped
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _error("alias", event.start_mark)
        if not isinstance(event, CollectionStartEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error("too_deep", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    if len(node.value.replace("_", "").lstrip("+-")) > _MAX_INT_TEXT:
        raise _error("int_too_large", node.start_mark)
    value = SafeConstructor.construct_yaml_int(loader, node)
    if not INT_MIN <= value <= INT_MAX:
        raise _error("int_too_large", node.start_mark)
    return value


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = SafeConstructor.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise _error("not_finite", node.start_mark)
    return value


def _construct_str(loader: _Loader, node: yaml.ScalarNode) -> str:
    value = SafeConstructor.construct_yaml_str(loader, node)
    if "\x00" in value:
        raise _error("nul", node.start_mark)
    return value


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str:
    # Helm reads values into plain JSON, where a date is the text written: keep it as text
    # (a Python date could not be stored or sent, and 2026-13-45 is not one).
    return _construct_str(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def load_yaml(text: str) -> Any:
    """The document in ``text`` (None when empty), or ``ValuesError``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _error("too_large")
    loader = None
    try:
        loader = _Loader(text)
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _error("syntax", mark, problem=exc.problem or exc.context or "") from None
    except yaml.YAMLError as exc:
        raise _error("syntax", problem=str(exc)) from None
    except ValuesError:
        raise
    except (ValueError, TypeError, ArithmeticError) as exc:
        # A scalar with an explicit tag it cannot have (``!!float "x"``).
        raise _error("syntax", problem=str(exc)) from None
    finally:
        if loader is not None:
            loader.dispose()


# --------------------------------------------------------------------------- parsed documents


def check_document(value: Any) -> None:
    """Raise ``ValuesError`` unless ``value`` obeys the same rules as a loaded YAML document.

    Walks without recursion, so any depth is answered with an error rather than a crash.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > MAX_DEPTH:
                raise _error("too_deep")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            if "\x00" in item:
                raise _error("nul")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _error("not_finite")
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT_MIN <= item <= INT_MAX:
                raise _error("int_too_large")
    if len(json.dumps(value, ensure_ascii=False, default=str).encode()) > MAX_BYTES:
        raise _error("too_large")

"""The values loader: a values override is plain data, and anything that is not (aliases,
deep nesting, huge or non-finite numbers, NUL characters, too much text) is refused with a
reason and a place, before it is expanded or converted."""

from __future__ import annotations

import pytest

from cozystack import values
from cozystack.values import ValuesError, check_document, load_yaml


def bomb(levels: int, root: str = "") -> str:
    """The classic billion-laughs document: each level holds nine aliases of the one above
    (under ``root:`` when given, where an add-on takes its values)."""
    indent = "  " if root else ""
    lines = [f"{root}:"] if root else []
    lines.append(f'{indent}l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", '
                 '"lol"]')
    for level in range(1, levels + 1):
        lines.append(f"{indent}l{level}: &l{level} ["
                     + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def refusal(text: str) -> ValuesError:
    with pytest.raises(ValuesError) as refused:
        load_yaml(text)
    return refused.value


@pytest.mark.parametrize("levels", [4, 7])
def test_an_alias_bomb_is_refused_at_its_first_anchor(levels):
    error = refusal(bomb(levels))
    assert (error.code, error.line, error.column) == ("alias", 1, 5)


@pytest.mark.parametrize("text", ["a: &x 1\nb: 2\n", "a: 1\nb: *x\n", "base: &b {x: 1}\n",
                                  "a: {<<: *b}\n"])
def test_any_anchor_or_alias_is_refused(text):
    assert refusal(text).code == "alias"


@pytest.mark.parametrize("text", ["x: " + "[" * 600 + "]" * 600, "{a: " * 600 + "1" + "}" * 600,
                                  "".join(f"{' ' * i}k:\n" for i in range(100)) + " " * 100
                                  + "v\n"])
def test_nesting_deeper_than_the_limit_is_refused_without_recursing(text):
    assert refusal(text).code == "too_deep"


def test_nesting_up_to_the_limit_is_read():
    depth = values.MAX_DEPTH
    assert load_yaml("[" * depth + "]" * depth) is not None


@pytest.mark.parametrize("text", ["x: " + "9" * 5000, "x: -" + "9" * 4301,
                                  f"x: {2**63}", f"x: {-(2**63) - 1}", "x: 0x" + "f" * 17,
                                  'x: !!int "' + "1" * 5000 + '"'])
def test_integers_beyond_64_bits_are_refused(text):
    assert refusal(text).code == "int_too_large"


@pytest.mark.parametrize("text", [f"x: {2**63 - 1}", f"x: {-(2**63)}", "x: 0b" + "1" * 63])
def test_64_bit_integers_are_read(text):
    assert isinstance(load_yaml(text)["x"], int)


@pytest.mark.parametrize("text", ["x: .inf", "x: -.inf", "x: .nan", "x: .NaN", "x: 1.0e+400",
                                  'x: !!float ".inf"'])
def test_non_finite_numbers_are_refused(text):
    error = refusal(text)
    assert (error.code, error.line, error.column) == ("not_finite", 1, 4)


@pytest.mark.parametrize("text", ['x: "a\\0b"', '"a\\0": 1'])
def test_nul_characters_are_refused(text):
    assert refusal(text).code == "nul"


def test_more_than_the_size_limit_is_refused_before_parsing():
    assert refusal("x: " + "a" * values.MAX_BYTES).code == "too_large"


@pytest.mark.parametrize("text", ["a: [", "a: 1\n---\nb: 2\n", 'x: !!float "abc"',
                                  'x: !!int "abc"', "!!python/object/apply:os.system [ls]",
                                  "x: a\x00b", "x: \ud800"])
def test_what_is_not_yaml_says_so(text):
    assert refusal(text).code == "syntax"


def test_dates_stay_the_text_written_as_helm_reads_them():
    assert load_yaml("a: 2026-01-02\nb: 2026-13-45\n") == {"a": "2026-01-02", "b": "2026-13-45"}


def test_plain_values_are_read_as_written():
    text = "cert-manager:\n  replicas: 2\n  ratio: 0.5\n  on: true\n  none: null\n  list: [a, 1]\n"
    assert load_yaml(text) == {"cert-manager": {"replicas": 2, "ratio": 0.5, True: True,
                                                "none": None, "list": ["a", 1]}}
    assert load_yaml("") is None


def test_the_message_says_where():
    assert refusal("ok: 1\nx: .nan\n").message == (
        "Numbers in custom values must be finite (no .inf or .nan) (line 2, column 4).")


# --------------------------------------------------------------------------- parsed documents


def deep_list(depth: int) -> list:
    root = node = []
    for _ in range(depth - 1):
        node.append([])
        node = node[0]
    return root


@pytest.mark.parametrize(("document", "code"), [
    ({"a": float("inf")}, "not_finite"), ({"a": [float("nan")]}, "not_finite"),
    ({"a": 10**30}, "int_too_large"), ({"a": -(2**63) - 1}, "int_too_large"),
    ({"a": "x\x00"}, "nul"), ({"a\x00": 1}, "nul"),
    ({"a": deep_list(values.MAX_DEPTH)}, "too_deep"), ({"a": deep_list(5000)}, "too_deep"),
    ({"a": "x" * values.MAX_BYTES}, "too_large"),
])
def test_parsed_documents_follow_the_same_rules(document, code):
    with pytest.raises(ValuesError) as refused:
        check_document(document)
    assert refused.value.code == code


def test_a_parsed_document_within_the_rules_passes():
    check_document({"a": deep_list(values.MAX_DEPTH - 1), "b": 2**63 - 1, "c": 1.5, "d": None,
                    "e": True, "f": "text"})

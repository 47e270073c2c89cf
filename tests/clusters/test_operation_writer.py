"""``clusters.operations`` is the one writer of ``Operation`` state (DESIGN.md, "one writer of
operation state"). import-linter cannot see attribute writes, so this reads the product's
syntax trees and refuses every other way of writing those fields: assigning an attribute,
``setattr``, saving a list of them, a queryset ``update``/``create`` of operations, building an
``Operation`` or raw SQL against its table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from clusters.models import Operation

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("clusters", "billing", "staff", "portal", "cozystack")
WRITER = Path("clusters/operations.py")
STATE_FIELDS = frozenset({
    "state", "steps", "error_class", "error_message", "attempts", "started_at", "submitted_at",
    "finished_at", "deadline_at", "next_poll_at", "lease_until", "lease_token", "lease_holder",
    "submitted_changed", "baseline_ready",
})
QUERYSET_WRITES = frozenset({"update", "create", "bulk_create", "bulk_update", "get_or_create",
                             "update_or_create"})


def product_files() -> list[Path]:
    return sorted(path.relative_to(ROOT) for package in PACKAGES
                  for path in (ROOT / package).rglob("*.py")
                  if "migrations" not in path.parts)


def _names_operations(node: ast.AST) -> bool:
    """Does the receiver chain of a call name ``Operation`` or a related ``operations``?"""
    while True:
        if isinstance(node, ast.Name):
            return node.id == "Operation"
        if isinstance(node, ast.Attribute):
            if node.attr == "operations":
                return True
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return False


def _strings(node: ast.AST | None) -> set[str]:
    if node is None:
        return set()
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def _targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    else:
        return []
    flat: list[ast.AST] = []
    while targets:
        target = targets.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            targets.extend(target.elts)
        elif isinstance(target, ast.Starred):
            targets.append(target.value)
        else:
            flat.append(target)
    return flat


def writes(source: str) -> list[tuple[int, str]]:
    """Every place ``source`` writes an operation's state: (line, what)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        for target in _targets(node):
            if isinstance(target, ast.Attribute) and target.attr in STATE_FIELDS:
                found.append((node.lineno, f"assigns .{target.attr}"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        keywords = {k.arg for k in node.keywords if k.arg}
        if isinstance(func, ast.Name) and func.id == "setattr" and len(node.args) >= 2 \
                and _strings(node.args[1]) & STATE_FIELDS:
            found.append((node.lineno, "setattr of a state field"))
        elif isinstance(func, ast.Name) and func.id == "Operation":
            found.append((node.lineno, "builds an Operation"))
        elif isinstance(func, ast.Attribute) and func.attr == "save":
            update_fields = next((k.value for k in node.keywords if k.arg == "update_fields"),
                                 None)
            if _strings(update_fields) & STATE_FIELDS:
                found.append((node.lineno, "saves state fields"))
        elif isinstance(func, ast.Attribute) and func.attr in QUERYSET_WRITES \
                and _names_operations(func.value):
            fields = keywords | _strings(node.args[1] if func.attr == "bulk_update"
                                         and len(node.args) > 1 else None)
            if func.attr in ("create", "bulk_create") or fields & STATE_FIELDS:
                found.append((node.lineno, f"{func.attr}() of operations"))
    for text in (n.value for n in ast.walk(ast.parse(source))
                 if isinstance(n, ast.Constant) and isinstance(n.value, str)):
        if Operation._meta.db_table in text.lower() and any(
                verb in text.lower() for verb in ("update ", "insert ")):
            found.append((0, "raw SQL writing the operations table"))
    return found


def test_only_the_state_machine_writes_operation_state():
    offenders = [f"{path}:{line}: {what}" for path in product_files() if path != WRITER
                 for line, what in writes((ROOT / path).read_text())]
    assert offenders == [], (
        "Operation state is written by clusters/operations.py only; call its functions "
        "(start, claim, step, back_off, submit, succeed, fail, cancel, abandon, retry):\n"
        + "\n".join(offenders))


def test_the_state_machine_is_where_the_writes_are():
    assert WRITER in product_files()
    assert writes((ROOT / WRITER).read_text())  # the check sees the writes it must refuse


def test_the_fields_are_the_operations_own():
    names = {f.name for f in Operation._meta.get_fields()}
    assert STATE_FIELDS <= names


@pytest.mark.parametrize("snippet", [
    "operation.state = 'failed'",
    "op.lease_until, op.lease_token = None, ''",
    "self.operation.attempts += 1",
    "setattr(operation, 'finished_at', now)",
    "operation.save(update_fields=['steps'])",
    "Operation.objects.filter(pk=1).update(state='running')",
    "cluster.operations.filter(state='queued').update(next_poll_at=now)",
    "Operation.objects.create(cluster=cluster, kind='scale')",
    "Operation(cluster=cluster, kind='scale').save()",
    "Operation.objects.bulk_update(ops, ['state'])",
    "cursor.execute('UPDATE clusters_operation SET state = %s', ['failed'])",
])
def test_the_check_sees_each_way_of_writing(snippet):
    assert writes(snippet)


@pytest.mark.parametrize("snippet", [
    "state = operation.state",
    "MeteringRun.objects.filter(pk=1).update(finished_at=now)",
    "operations.fail(operation, 'timeout', 'Too slow.')",
    "Operation.objects.filter(state__in=Operation.ACTIVE_STATES).exists()",
    "cluster.operations.filter(submitted_at__isnull=False).first()",
])
def test_reads_and_other_models_are_not_writes(snippet):
    assert writes(snippet) == []

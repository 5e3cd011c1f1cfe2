"""An architectural guard: outside auth/ and spec/, no code decides by auth type; it asks the type's plugin.

Adding an auth type must stay one module in ``authbridge/auth/plugins/`` plus its model in ``spec/``:
a branch on the type anywhere else (``isinstance(spec.auth, OAuth2Auth)``, ``auth.type == "basic"``,
``grant_type == "password"``) is a place the new type would be forgotten.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import authbridge
from authbridge.auth import PLUGINS
from authbridge.spec.models import AuthSpec

SOURCE = Path(authbridge.__file__).parent
#: Where deciding by type is the job.
ALLOWED = (SOURCE / "auth", SOURCE / "spec")
#: The spec's auth models (OAuth2Auth, CustomTokenAuth...), read from the AuthSpec union.
MODELS = frozenset(model.__name__ for model in typing.get_args(typing.get_args(AuthSpec)[0]))
#: The names an auth type or an OAuth 2.0 grant goes by.
TYPE_NAMES = frozenset(PLUGINS) | {"authorization_code", "client_credentials", "password", "refresh_token"}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _is_type_expression(node: ast.AST) -> bool:
    """``x.auth.type``, ``auth_type``, ``x.grant_type`` and the like."""
    text = ast.unparse(node)
    return "grant_type" in text or ("auth" in text and "type" in text)


def type_checks(source: str) -> list[str]:
    """Every place in ``source`` that decides by auth type (``line: code``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        hit = False
        if isinstance(node, ast.ImportFrom):
            hit = any(alias.name in MODELS for alias in node.names)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            hit = len(node.args) == 2 and bool(_names(node.args[1]) & MODELS)
        elif isinstance(node, ast.Attribute) and node.attr == "grant_type":
            hit = True
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            constants = {
                c.value
                for o in operands
                for c in ast.walk(o)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
            hit = any(_is_type_expression(o) for o in operands) and bool(constants & TYPE_NAMES)
        if hit:
            found.append(f"{getattr(node, 'lineno', '?')}: {ast.unparse(node)}")
    return found


def test_the_guard_finds_each_kind_of_type_check() -> None:
    sample = """
from authbridge.spec import Integration, OAuth2Auth
if isinstance(spec.auth, OAuth2Auth | CustomTokenAuth):
    pass
if spec.auth.grant_type == "authorization_code":
    pass
if spec.auth.type == "basic":
    pass
if auth_type not in {"oauth2", "custom_token"}:
    pass
if status == "active" and plugin.redirects(spec):
    pass
"""
    assert sorted(int(line.partition(":")[0]) for line in type_checks(sample)) == [2, 3, 5, 5, 7, 9]


def test_no_code_outside_auth_and_spec_decides_by_auth_type() -> None:
    offenders = [
        f"{path.relative_to(SOURCE.parent)}:{hit}"
        for path in sorted(SOURCE.rglob("*.py"))
        if not any(path.is_relative_to(allowed) for allowed in ALLOWED)
        for hit in type_checks(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "ask the auth type's plugin (authbridge.auth.plugin_for) instead:\n" + "\n".join(offenders)

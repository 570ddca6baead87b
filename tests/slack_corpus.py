"""Slack payloads copied from Slack's own published material, one file per surface and three kinds of workspace.

Each ``tests/fixtures/slack_payloads/<surface>.json`` holds, for every kind (``standard``, ``grid``, ``org``),
the payload as Slack sends it, the source it was copied from and what was changed. A JSON string that is
exactly ``"{{name}}"`` is a placeholder that :func:`fill` replaces; :func:`body` gives the HTTP body and
Content-Type as Slack posts it.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

KINDS: tuple[str, ...] = ("standard", "grid", "org")
"""Standard workspace, Enterprise Grid workspace-level install, Enterprise Grid org-wide install."""

CORPUS_DIR = Path(__file__).parent / "fixtures" / "slack_payloads"
"""Where the surfaces' JSON files live."""

TRANSPORTS = ("form", "interactive", "json")
_PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Fixture:
    """One payload: a surface as one kind of workspace sends it."""

    surface: str
    kind: str
    transport: str
    source: str
    changed: str
    payload: dict[str, Any]


@cache
def _read(surface: str) -> dict[str, Any]:
    path = CORPUS_DIR / f"{surface}.json"
    if not path.is_file():
        raise KeyError(f"no Slack payload fixture for surface {surface!r}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("surface") != surface or data.get("transport") not in TRANSPORTS:
        raise ValueError(f"{path.name}: surface or transport is wrong")
    return data


def surfaces() -> list[str]:
    """Every surface in the corpus (file stems), sorted."""
    return sorted(path.stem for path in CORPUS_DIR.glob("*.json"))


def load(surface: str, kind: str) -> Fixture:
    """The fixture of `surface` for `kind` (a fresh deep copy of its payload)."""
    if kind not in KINDS:
        raise KeyError(f"unknown kind {kind!r}; expected one of {KINDS}")
    data = _read(surface)
    entry = data["kinds"].get(kind)
    if entry is None:
        raise KeyError(f"surface {surface!r} has no {kind!r} payload")
    return Fixture(
        surface=surface,
        kind=kind,
        transport=data["transport"],
        source=entry["source"],
        changed=entry["changed"],
        payload=copy.deepcopy(entry["payload"]),
    )


def all_fixtures() -> list[Fixture]:
    """Every fixture of every surface and kind."""
    return [load(surface, kind) for surface in surfaces() for kind in KINDS]


def _walk_placeholders(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for value in node.values():
            _walk_placeholders(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk_placeholders(value, found)
    elif isinstance(node, str):
        match = _PLACEHOLDER.fullmatch(node)
        if match:
            found.add(match.group(1))


def placeholders(fixture: Fixture) -> set[str]:
    """The names of the placeholders in `fixture`'s payload."""
    found: set[str] = set()
    _walk_placeholders(fixture.payload, found)
    return found


def _substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(value, values) for value in node]
    if isinstance(node, str):
        match = _PLACEHOLDER.fullmatch(node)
        if match:
            name = match.group(1)
            if name not in values:
                raise KeyError(f"no value for placeholder {name!r} in {node!r}")
            return values[name]
    return node


def fill(fixture: Fixture, **values: str) -> dict[str, Any]:
    """The payload with every ``"{{name}}"`` replaced by ``values[name]``.

    Raises KeyError naming a placeholder left without a value; values the fixture does not use are ignored.
    """
    filled: dict[str, Any] = _substitute(fixture.payload, values)
    return filled


def body(fixture: Fixture, **values: str) -> tuple[bytes, str]:
    """The HTTP body and Content-Type as Slack posts the filled payload."""
    payload = fill(fixture, **values)
    if fixture.transport == "form":
        if not all(isinstance(v, str) for v in payload.values()):
            raise TypeError(f"{fixture.surface}: a form payload holds only strings")
        return urlencode(payload).encode(), _FORM
    if fixture.transport == "interactive":
        return urlencode({"payload": json.dumps(payload)}).encode(), _FORM
    return json.dumps(payload).encode(), "application/json"


def default_user(kind: str) -> str:
    """The acting user's id for `kind` (Enterprise Grid user ids start with W)."""
    return "U0ALICE" if kind == "standard" else "W0ALICE"


def other_user(kind: str) -> str:
    """A second user's id for `kind` (an approver, another requester)."""
    return "U0BOB" if kind == "standard" else "W0BOB"

"""The wire's reply reader: bodies past the cap keep the members that arrived whole."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.providers.wire import MAX_BODY_BYTES, Reply, leading_members

HUGE = "x" * (2 * MAX_BODY_BYTES)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": 401, "error_text": HUGE}, {"error": 401}),
        ({"status": "success", "state": "stopped", "note": HUGE}, {"status": "success", "state": "stopped"}),
        ({"success": True, "data": {"campaign": {"status": "stopped"}, "blob": HUGE}},
         {"success": True, "data": {"campaign": {"status": "stopped"}}}),
        ({"list": [1, 2, HUGE], "after": 1}, {}),
        ([HUGE], None),
    ],
    ids=["verdict-first", "success-first", "nested", "cut-in-a-list", "not-an-object"],
)
def test_a_body_past_the_cap_keeps_its_whole_leading_members(body: object, expected: object) -> None:
    raw = json.dumps(body).encode()
    reply = Reply.of(200, raw[:MAX_BODY_BYTES], {}, truncated=True)
    assert reply.truncated
    assert reply.json == expected


def test_a_body_within_the_cap_is_parsed_whole() -> None:
    reply = Reply.of(200, b'{"error": 0, "error_text": "Successful operation"}', {})
    assert reply.json == {"error": 0, "error_text": "Successful operation"} and not reply.truncated


@given(st.text(max_size=200))
def test_leading_members_never_raises(text: str) -> None:
    result = leading_members(text)
    assert result is None or isinstance(result, dict)


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=10) | st.booleans(), max_size=5))
def test_a_whole_object_reads_the_same_as_json(body: dict[str, object]) -> None:
    assert leading_members(json.dumps(body)) == body

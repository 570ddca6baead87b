"""The command parser: valid commands, every kind of bad input, and no crash for any text."""

from __future__ import annotations

import contextlib
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.parsing import HelpCommand, HistoryCommand, StatusCommand, StopCommand, UsageError, parse_command
from bot.providers.clevertap import CleverTapAccount, CleverTapAdapter
from bot.providers.registry import ProviderRegistry


def registry(*accounts: str, default: str | None = None) -> ProviderRegistry:
    adapters = [
        CleverTapAdapter(name, CleverTapAccount(account_id="A", passcode="p", region="in1"))
        for name in accounts
    ]
    return ProviderRegistry(adapters, {"clevertap": default} if default else {})


ONE = registry("default", default="default")


@pytest.mark.parametrize("text", [None, "", "   ", "help", "HELP", "-h", "--help", "?"])
def test_help(text: str | None) -> None:
    assert parse_command(text, ONE) == HelpCommand()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("clevertap 1457432766 wrong segment", StopCommand("clevertap", "default", "1457432766", "wrong segment")),
        ("CleverTap 1457432766", StopCommand("clevertap", "default", "1457432766", "")),
        ("ct 1457432766", StopCommand("clevertap", "default", "1457432766", "")),
        (
            "CT:default `1457432766`  price &amp; audience",
            StopCommand("clevertap", "default", "1457432766", "price & audience"),
        ),
        ("clevertap\u00a01457432766\twrong", StopCommand("clevertap", "default", "1457432766", "wrong")),
        ("clevertap 0001457432766", StopCommand("clevertap", "default", "1457432766", "")),
    ],
)
def test_valid_commands(text: str, expected: StopCommand) -> None:
    assert parse_command(text, ONE) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mailchimp 1", "Unknown provider 'mailchimp'"),
        ("clevertap", "Missing the campaign id"),
        ("clevertap abc", "positive whole number"),
        ("clevertap -1", "positive whole number"),
        ("clevertap 1.5", "positive whole number"),
        ("clevertap 0", "positive"),
        ("clevertap 1e9", "positive whole number"),
        ("clevertap ١٢٣", "positive whole number"),  # non-ASCII digits
        ("clevertap 99999999999999999999999", "too long"),
        ("clevertap:prod 1", "no account 'prod'"),
        ("clevertap: 1", "is not <provider>:<account>"),
        ("clevertap:a:b 1", "is not <provider>:<account>"),
        ("clevertap 1457432766 1457432767", "One campaign per command"),
        ("help me", "'help' takes nothing"),
        ("sonarly abc", "not configured"),
        ("clevertap 1 " + "x" * 600, "keep it under 500"),
    ],
)
def test_invalid_commands_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_command(text, ONE)
    assert problem in str(caught.value)
    assert "Usage: /stopcampaign" in str(caught.value)


def test_several_accounts_need_a_name_or_a_default() -> None:
    two = registry("eu", "in")
    with pytest.raises(UsageError, match="several accounts"):
        parse_command("clevertap 1", two)
    assert parse_command("clevertap:in 1", two).account == "in"  # type: ignore[union-attr]
    assert parse_command("clevertap 1", registry("eu", "in", default="in")).account == "in"  # type: ignore[union-attr]


def test_no_configured_provider() -> None:
    with pytest.raises(UsageError, match="not configured"):
        parse_command("clevertap 1", ProviderRegistry([], {}))


@given(st.text())
def test_any_text_parses_or_raises_usage_error(text: str) -> None:
    try:
        result = parse_command(text, ONE)
    except UsageError as exc:
        assert str(exc)
    else:
        assert isinstance(result, HelpCommand | HistoryCommand | StatusCommand | StopCommand)


@given(
    st.lists(
        st.sampled_from(
            ["clevertap", "ct", "ct:default", "1457432766", "0", "-", ":", "help", "&lt;", "`", "\u200b", "x" * 60]
        ),
        max_size=6,
    ).map(" ".join)
)
def test_command_like_text_parses_or_raises_usage_error(text: str) -> None:
    with contextlib.suppress(UsageError):
        parse_command(text, ONE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("history", HistoryCommand()),
        ("HISTORY ct", HistoryCommand("clevertap", None, 10)),
        ("history clevertap:prod 5", HistoryCommand("clevertap", "prod", 5)),
        ("history 50", HistoryCommand(None, None, 50)),
        ("status abc_DEF-123", StatusCommand("abc_DEF-123")),
        ("status `abc`", StatusCommand("abc")),
    ],
)
def test_history_and_status(text: str, expected: object) -> None:
    assert parse_command(text, ONE) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("history 0", "from 1 to 50"),
        ("history 51", "from 1 to 50"),
        ("history mailchimp", "unknown provider"),
        ("history ct 5 extra", "unexpected"),
        ("status", "exactly one request id"),
        ("status a b", "exactly one request id"),
        ("status <script>", "is not a request id"),
    ],
)
def test_bad_history_and_status(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_command(text, ONE)


def test_request_ids_are_short_url_safe_and_never_look_like_an_option() -> None:
    from bot.core.lifecycle import REQUEST_ID_ALPHABET, new_request_id

    ids = {new_request_id() for _ in range(5000)}
    assert len(ids) == 5000
    for request_id in ids:
        assert len(request_id) == 12 and set(request_id) <= set(REQUEST_ID_ALPHABET)
        assert not request_id.startswith("-")
        assert request_id == urllib.parse.quote(request_id, safe="")
        assert parse_command(f"status {request_id}", ONE) == StatusCommand(request_id)

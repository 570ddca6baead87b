"""Parsing ``/stopcampaign`` text: ``<provider>[:<account>] <campaign-id> [reason…]`` or ``help``.

The parser is the first line of defence: whatever the text, it returns a command or raises
`UsageError` with a message that says exactly what is wrong. Nothing else escapes it.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from bot.core.ports import CampaignIdError, ProviderCatalog

USAGE = (
    "Usage: /stopcampaign <provider>[:<account>] <campaign-id> [reason…]\n"
    "       /stopcampaign history [<provider>[:<account>]] [<n>]   ·   /stopcampaign status <request-id>"
)
EXAMPLE = "Example: /stopcampaign clevertap 1457432766 wrong segment"
MAX_REASON = 500
HELP_WORDS = frozenset({"help", "-h", "--help", "?", "usage"})
DEFAULT_HISTORY = 10
MAX_HISTORY = 50
_REQUEST_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_QUOTES = "`'\"“”‘’"  # noqa: RUF001 - typographic quotes are what people paste


class UsageError(Exception):
    """The command text is not a valid command; `str(error)` says what is wrong."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.problem}\n{USAGE}\n{EXAMPLE}"


@dataclass(frozen=True)
class HelpCommand:
    """``/stopcampaign help`` or no text at all."""


@dataclass(frozen=True)
class HistoryCommand:
    """``/stopcampaign history [provider[:account]] [n]``: the latest requests."""

    provider: str | None = None
    account: str | None = None
    limit: int = DEFAULT_HISTORY


@dataclass(frozen=True)
class StatusCommand:
    """``/stopcampaign status <request-id>``: one request's whole audit trail."""

    request_id: str


@dataclass(frozen=True)
class StopCommand:
    """A valid request to stop one campaign on one configured account."""

    provider: str
    account: str
    campaign_id: str
    reason: str


Command = HelpCommand | HistoryCommand | StatusCommand | StopCommand


def parse_command(text: str | None, catalog: ProviderCatalog) -> Command:
    """Parse command text (as Slack sends it: HTML-escaped) against the configured accounts."""
    clean = _clean(text or "")
    tokens = clean.split()
    if not tokens or tokens[0].lower() in HELP_WORDS:
        if len(tokens) > 1:
            raise UsageError(f"'help' takes nothing after it; got {' '.join(tokens[1:])!r}.")
        return HelpCommand()

    keyword = tokens[0].lower()
    if keyword == "history":
        return _history(tokens[1:], catalog)
    if keyword == "status":
        return _status(tokens[1:])

    target, *rest = tokens
    provider_name, _, account_name = target.partition(":")
    klass = catalog.kind(provider_name)
    if klass is None:
        known = ", ".join(_name_with_aliases(c.name, c.aliases) for c in catalog.kinds())
        raise UsageError(f"Unknown provider {_shorten(provider_name)!r}. Providers: {known}.")
    accounts = catalog.accounts(klass.name)
    if not accounts:
        configured = ", ".join(c.name for c in catalog.configured()) or "none"
        raise UsageError(f"{klass.display_name} is not configured in this app (configured providers: {configured}).")
    if ":" in account_name or (target.endswith(":") and not account_name):
        raise UsageError(f"{_shorten(target)!r} is not <provider>:<account>.")
    if account_name:
        if account_name not in accounts:
            raise UsageError(
                f"{klass.display_name} has no account {_shorten(account_name)!r}. Accounts: {', '.join(accounts)}."
            )
        account = account_name
    else:
        default = catalog.default_account(klass.name)
        if default is None:
            raise UsageError(
                f"{klass.display_name} has several accounts ({', '.join(accounts)}): name one, "
                f"e.g. /stopcampaign {klass.name}:{accounts[0]} <campaign-id>."
            )
        account = default

    if not rest:
        raise UsageError(f"Missing the campaign id: {klass.display_name} ids are {klass.campaign_id_hint}.")
    raw_id, *reason_words = rest
    try:
        campaign_id = catalog.parse_campaign_id(klass.name, raw_id.strip(_QUOTES))
    except CampaignIdError as exc:
        raise UsageError(str(exc)) from None
    if reason_words and reason_words[0].strip(_QUOTES).isdigit():
        raise UsageError(
            f"One campaign per command: {_shorten(reason_words[0])!r} after the id looks like a second id. "
            "Anything after the id is the reason, and a reason should be words."
        )
    reason = " ".join(reason_words)
    if len(reason) > MAX_REASON:
        raise UsageError(f"The reason is {len(reason)} characters long; keep it under {MAX_REASON}.")
    return StopCommand(provider=klass.name, account=account, campaign_id=campaign_id, reason=reason)


class FormError(Exception):
    """A form field is not valid; `field` names it ("target", "campaign", "reason")."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def form_command(target: str | None, raw_id: str | None, reason: str | None, catalog: ProviderCatalog) -> StopCommand:
    """A stop from form fields (the target is ``provider:account``); raises `FormError` per field."""
    provider, _, account = (target or "").partition(":")
    klass = catalog.kind(provider)
    if klass is None or account not in catalog.accounts(klass.name):
        raise FormError("target", "Choose one of the configured provider accounts.")
    text = (raw_id or "").strip().strip(_QUOTES)
    if not text:
        raise FormError("campaign", f"{klass.display_name} ids are {klass.campaign_id_hint}.")
    try:
        campaign_id = catalog.parse_campaign_id(klass.name, text)
    except CampaignIdError as exc:
        raise FormError("campaign", str(exc)) from None
    reason = " ".join((reason or "").split())
    if len(reason) > MAX_REASON:
        raise FormError("reason", f"The reason is {len(reason)} characters long; keep it under {MAX_REASON}.")
    return StopCommand(provider=klass.name, account=account, campaign_id=campaign_id, reason=reason)


_PIECES = re.compile(r"[^A-Za-z0-9_-]+")


def find_target(text: str, catalog: ProviderCatalog) -> tuple[str | None, str | None]:
    """(``provider:account``, campaign id) guessed from free text (see `StopService.find_target`)."""
    pieces = [p for p in _PIECES.split(text[:5000]) if p][:500]  # URLs fall apart into host and path words
    kinds = list(catalog.configured())
    named = [k for k in kinds if any(k.named(p) for p in pieces)]
    found: list[tuple[str, str]] = []
    for kind in named or kinds:
        for piece in pieces:
            try:
                found.append((kind.name, catalog.parse_campaign_id(kind.name, piece)))
                break
            except CampaignIdError:
                continue
    if not named and len(found) != 1:
        return None, None  # no provider named and the id fits none, or several: do not guess
    provider = found[0][0] if found else named[0].name
    account = catalog.default_account(provider) or catalog.accounts(provider)[0]
    campaign = next((c for p, c in found if p == provider), None)
    return f"{provider}:{account}", campaign


def _history(args: list[str], catalog: ProviderCatalog) -> HistoryCommand:
    provider = account = None
    limit = DEFAULT_HISTORY
    rest = list(args)
    if rest and not rest[0].isdigit():
        name, _, account_name = rest.pop(0).partition(":")
        klass = catalog.kind(name)
        if klass is None:
            raise UsageError(f"history: unknown provider {_shorten(name)!r}.")
        provider, account = klass.name, account_name or None
    if rest:
        count = rest.pop(0)
        if not count.isascii() or not count.isdigit() or not 1 <= int(count) <= MAX_HISTORY:
            raise UsageError(f"history: the count must be a number from 1 to {MAX_HISTORY}; got {_shorten(count)!r}.")
        limit = int(count)
    if rest:
        raise UsageError(f"history: unexpected {_shorten(' '.join(rest))!r}.")
    return HistoryCommand(provider, account, limit)


def _status(args: list[str]) -> StatusCommand:
    if len(args) != 1:
        raise UsageError("status takes exactly one request id (shown at the bottom of every card).")
    request_id = args[0].strip(_QUOTES)
    if not request_id or len(request_id) > 64 or not set(request_id) <= _REQUEST_ID:
        raise UsageError(f"{_shorten(request_id)!r} is not a request id.")
    return StatusCommand(request_id)


def _clean(text: str) -> str:
    """Undo Slack's HTML escaping and drop control and format characters (keep whitespace)."""
    unescaped = html.unescape(text)
    return "".join(
        " " if ch.isspace() else ch for ch in unescaped if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name_with_aliases(name: str, aliases: tuple[str, ...]) -> str:
    return f"{name} ({', '.join(aliases)})" if aliases else name

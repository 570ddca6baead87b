"""What an account of any provider is: its settings (strict, secrets as SecretStr) and its campaign ids.

Every adapter's account model extends `AccountSettings`; `positive_integer_id` and `token_id` are
the two id formats an adapter can declare.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict

from bot.core.ports import CampaignIdError
from bot.providers.wire import clip

MAX_ID_DIGITS = 18
"""Longest numeric campaign id accepted: stays inside a signed 64-bit integer."""
MAX_TOKEN = 64
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_base_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port that is not a number
        httpx.URL(value)
    except (ValueError, httpx.InvalidURL):
        raise ValueError("must be an http(s) URL such as https://api.example.com") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError("must be an http(s) URL such as https://api.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry a query, a fragment or credentials")
    if not value.isascii() or not value.isprintable():
        raise ValueError("must be printable ASCII (encode international domain names as xn--…)")
    return value.rstrip("/")


def _check_dashboard_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or not value.isascii() or not value.isprintable():
        raise ValueError("must be an http(s) URL; {campaign_id} is replaced by the campaign's id")
    return value


BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
"""An http(s) base URL without query or credentials, stored without a trailing slash."""
DashboardUrl = Annotated[str, AfterValidator(_check_dashboard_url)]


class AccountSettings(BaseModel):
    """Base of every provider's account settings: strict, immutable, secrets as SecretStr."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    base_url: BaseUrl | None = None
    dashboard_url: DashboardUrl | None = None
    """The campaign's page in the provider's dashboard, overriding the adapter's template."""


def positive_integer_id(raw: str, display_name: str, hint: str) -> str:
    """A numeric campaign id typed by a user, normalized; raises `CampaignIdError` saying what is wrong."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text.isascii() or not text.isdigit():
        raise CampaignIdError(f"{display_name} campaign ids are {hint}; got {clip(str(raw), 40)!r}.")
    if len(text.lstrip("0")) > MAX_ID_DIGITS:
        raise CampaignIdError(f"{display_name} campaign id {clip(text, 40)!r} is too long to be a campaign id.")
    value = int(text)
    if value <= 0:
        raise CampaignIdError(f"{display_name} campaign ids are positive; got {text!r}.")
    return str(value)


def token_id(raw: str, display_name: str, hint: str) -> str:
    """A URL-path-safe id (letters, digits, '_' and '-'), as typed: such ids are case-sensitive."""
    text = raw.strip() if isinstance(raw, str) else ""
    if len(text) > MAX_TOKEN:
        raise CampaignIdError(f"{display_name} campaign id is too long ({len(text)} characters, at most {MAX_TOKEN}).")
    if _TOKEN.fullmatch(text) is None:
        raise CampaignIdError(f"{display_name} campaign ids are {hint}; got {clip(str(raw), 40)!r}.")
    return text


def is_token(value: str) -> bool:
    """True for letters, digits, '_' and '-' only (1 to 64): safe in a URL path."""
    return _TOKEN.fullmatch(value) is not None

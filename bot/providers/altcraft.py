"""Altcraft: ``POST /api/v1.1/campaigns/deactivate`` with the token in the JSON body (seed 004).

Every call is ``POST /api/v1.1/<method>`` with a JSON body carrying ``"token"``, and every answer
carries its verdict in the body: ``{"data": …, "error": 0, "error_text": "Successful operation"}``.
``error`` ≠ 0 is a failure even on HTTP 200: 400 incorrect request, 401 token required or invalid,
402 tariff limit reached, 403 no access (seed 004's API interaction page); other codes are kept raw
and count as provider errors. The docs name no not-found code: installs answer ``error 400`` with
"Campaign not found" (or its Russian), so the text decides. A bare HTTP 404 (no Altcraft envelope)
comes from the web server, not the API: the base URL is wrong.

The stop is ``{"id": <int>, "abort_if_running": <bool>}``; the flag comes from the account
(default true: a kill switch drops the messages already queued, where Altcraft's own default
false still sends them). Deactivation is repeat-safe (deactivating an inactive campaign changes
nothing), and it can be undone (the campaign can be activated again). It is sent even when the
campaign already reads inactive: with ``abort_if_running`` it may still drop a queue left by an
earlier deactivation without it.

Reads: ``campaigns/get_status`` (``data: {is_active, is_completed, status}``) before the stop, to
settle doubt, and after a success; its flags decide the phase, the ``status`` word only when the
flags are missing (`AltcraftAdapter.phases`, partly assumed: v75's super-campaign words included).
The card's preview is ``campaigns/get`` (name, type, channel, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import SecretStr, field_validator

from bot.core.models import CampaignInfo, CampaignPhase, OutcomeStatus
from bot.providers.accounts import AccountSettings
from bot.providers.auth import Auth, BodyToken
from bot.providers.base import ProviderAdapter, StopBody
from bot.providers.verdicts import Read, Reads
from bot.providers.wire import Call, Reply, flag_field, int_field, text_field

S = OutcomeStatus
P = CampaignPhase

DEFAULT_BASE_URL = "https://ru.altkraft.com"
API_PREFIX = "/api/v1.1"
DEACTIVATE_PATH = f"{API_PREFIX}/campaigns/deactivate"
GET_STATUS_PATH = f"{API_PREFIX}/campaigns/get_status"
GET_PATH = f"{API_PREFIX}/campaigns/get"

# error_text fragments that mean the campaign id is unknown, whatever the code (installs answer in
# English or Russian).
_NOT_FOUND_HINTS = ("not found", "not exist", "no such", "unknown campaign", "не найден", "не существует")
_EXTRA_FIELDS = (
    "channel",
    "description",
    "update_time",
    "updated_user",
    "resource_id",
    "data_type",
    "data_id",
    "subid",
    "push_sending_mode",
)


class AltcraftAccount(AccountSettings):
    """One Altcraft install: an API token, the install's base URL, and the abort flag."""

    token: SecretStr
    abort_if_running: bool = True
    """Send ``abort_if_running: true``: drop the messages already queued instead of sending them."""

    @field_validator("token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


def _envelope(reply: Reply) -> tuple[str | None, str | None]:
    """The envelope's ``error`` (as text, ASCII digits only) and ``error_text``."""
    body = reply.json_object()
    code = int_field(body, "error")
    return (str(code) if code is not None else None), text_field(body, "error_text")


class AltcraftAdapter(ProviderAdapter[AltcraftAccount]):
    """Deactivates Altcraft campaigns (broadcast, regular, trigger) through ``campaigns/deactivate``."""

    name = "altcraft"
    display_name = "Altcraft"
    aliases = ("ac", "altkraft")
    env_prefix = "ALTCRAFT_"
    # ALTCRAFT_ABORT_IF_RUNNING alone (without a token) does not make Altcraft configured.
    env_modifiers = frozenset({"abort_if_running", "base_url", "dashboard_url"})
    account_model = AltcraftAccount
    campaign_id_hint = "a positive whole number such as 118 (the campaign's ID in Altcraft)"
    default_base_url = DEFAULT_BASE_URL
    # A second deactivation cannot send anything (at worst it drops the queue again, which is the
    # point of a kill switch), so doubt that a read cannot settle is settled by sending it again.
    repeat_safe = True
    stop_meaning: ClassVar[str] = (
        "Deactivates the campaign: it stops sending and triggering. With abort_if_running (this app's "
        "default) messages already queued are dropped; without it they are still sent. Messages "
        "already sent are not recalled. The campaign can be activated again in Altcraft."
    )
    undoable = True
    reads = Reads(settle=True, before=True, back=True)
    # Altcraft publishes no API rate limit. A stop makes a few calls (read, deactivate, read), so
    # 5 per second and 3 in flight stay polite to a shared cloud or a small on-premises install.
    rate_per_second = 5.0
    max_in_flight = 3
    # Altcraft answers its failures on HTTP 200, so the body's code decides (`code_status`); a bare
    # 404 is the web server's (no API at that path), not Altcraft's "campaign not found".
    http_outcomes: ClassVar[dict[int, OutcomeStatus]] = {
        400: S.INVALID_REQUEST,
        401: S.UNAUTHORIZED,
        403: S.FORBIDDEN,
        404: S.PROVIDER_ERROR,
    }
    # 402 "tariff limit reached" is a refusal for this account that no retry fixes (an admin must
    # lift it): `forbidden`, not a failure of the provider. 404 and 429 are the HTTP meanings an
    # install or its proxy may put in the body.
    code_outcomes: ClassVar[dict[str, OutcomeStatus]] = {
        "400": S.INVALID_REQUEST,
        "401": S.UNAUTHORIZED,
        "402": S.FORBIDDEN,
        "403": S.FORBIDDEN,
        "404": S.NOT_FOUND,
        "429": S.RATE_LIMITED,
    }
    outcome_notes: ClassVar[dict[OutcomeStatus, str]] = {
        S.UNAUTHORIZED: "Altcraft rejected the API token: check the account's token (ALTCRAFT_TOKEN).",
        S.FORBIDDEN: (
            "Error 403 means the token has no access to this campaign or to deactivating; error 402 that "
            "the account's tariff limit is reached, which an Altcraft admin must raise first."
        ),
        S.NOT_FOUND: "Altcraft does not know campaign {campaign_id} at {base_url}.",
        S.INVALID_REQUEST: "Check the campaign id (Altcraft's are whole numbers such as 118).",
        S.PROVIDER_ERROR: (
            "An HTTP 404 without Altcraft's answer means there is no Altcraft API at this address: "
            "check the base URL ({base_url}), the install's address without /api/v1.1."
        ),
    }
    phases: ClassVar[dict[str, CampaignPhase]] = {
        "active": P.ACTIVE,
        "waiting": P.ACTIVE,
        "running": P.ACTIVE,
        "sending": P.ACTIVE,
        "scheduled": P.ACTIVE,
        "inactive": P.STOPPED,
        "stopped": P.STOPPED,
        "deactivated": P.STOPPED,
        "paused": P.STOPPED,
        "completed": P.COMPLETED,
        "finished": P.COMPLETED,
        "done": P.COMPLETED,
        "deleted": P.NOT_STOPPABLE,
        "cloning": P.NOT_STOPPABLE,
        "archived": P.NOT_STOPPABLE,
    }

    @property
    def base_url(self) -> str:
        """The install's URL (without ``/api/v1.1``, which people often paste), else the cloud host."""
        url = self.account.base_url or DEFAULT_BASE_URL
        if url.lower().endswith(API_PREFIX):
            url = url[: -len(API_PREFIX)].rstrip("/") or url
        return url

    def make_auth(self) -> Auth:
        """``"token"`` in every call's JSON body."""
        return BodyToken("token", self.account.token)

    def describe_stop(self) -> str:
        """What stopping does for THIS account: whether queued messages are dropped or still sent."""
        if self.account.abort_if_running:
            return (
                "Deactivates the campaign and aborts its sending queue (abort_if_running is on): "
                "messages already queued are dropped, not sent. Messages already sent are not "
                "recalled. The campaign can be activated again in Altcraft."
            )
        return (
            "Deactivates the campaign, but messages already queued are STILL SENT (abort_if_running "
            "is off for this account); only new sends stop. Messages already sent are not recalled. "
            "The campaign can be activated again in Altcraft."
        )

    # ----- the wire -------------------------------------------------------------------------------

    def stop_call(self, campaign_id: str) -> Call:
        """``campaigns/deactivate`` with the id as a JSON integer and the account's abort flag."""
        body = {"id": int(campaign_id), "abort_if_running": self.account.abort_if_running}
        return Call("POST", DEACTIVATE_PATH, json=body)

    def read_call(self, campaign_id: str) -> Call:
        """``campaigns/get_status``."""
        return Call("POST", GET_STATUS_PATH, json={"id": int(campaign_id)})

    def preview_call(self, campaign_id: str) -> Call:
        """``campaigns/get``: the state and the campaign's name, type and channel."""
        return Call("POST", GET_PATH, json={"id": int(campaign_id)})

    def stop_body(self, reply: Reply) -> StopBody:
        """The envelope: ``error`` 0 is success, any other code a failure; no code is no verdict."""
        code, message = _envelope(reply)
        if code is None:
            return StopBody(message=message)
        if code != "0":
            return StopBody(success=False, code=code, message=message)
        if self.account.abort_if_running:
            note = "messages already queued are dropped"
        else:
            note = "messages already queued are still sent (abort_if_running is off)"
        return StopBody(success=True, code=code, message=message, note=note)

    def code_status(self, code: str | None, message: str | None) -> OutcomeStatus | None:
        """Not-found texts first (the docs name no code), then the table; unknown codes are provider errors."""
        if code is None or code == "0":
            return None
        if message and any(hint in message.lower() for hint in _NOT_FOUND_HINTS):
            return S.NOT_FOUND
        return self.code_outcomes.get(code, S.PROVIDER_ERROR)

    def campaign_of(self, reply: Reply, campaign_id: str) -> CampaignInfo | None:
        """``data`` of a ``get_status`` or ``get`` answer whose ``error`` is 0."""
        body = reply.json_object()
        data = body.get("data")
        if int_field(body, "error") != 0 or not isinstance(data, dict):
            return None
        return self._info(data, campaign_id)

    def read_problem(self, reply: Reply, campaign_id: str) -> Read:
        """Why a read carries no campaign; an unknown campaign and a rejected token are definite.

        Definite problems are sentences (the engine adds them to the detail); the others are
        clauses (it puts them in parentheses).
        """
        code, message = _envelope(reply)
        status = reply.status
        meaning = f"error {code}: {message}" if message else f"error {code}"
        coded = self.code_status(code, message) if status < 500 else None
        if coded is S.NOT_FOUND:
            return Read(None, f"Altcraft does not know campaign {campaign_id} ({meaning}).", S.NOT_FOUND)
        if coded is S.UNAUTHORIZED:
            return Read(None, f"Altcraft rejected the token ({meaning}).", S.UNAUTHORIZED)
        if coded is not None:
            transient = coded in (S.RATE_LIMITED, S.PROVIDER_ERROR)
            return Read(None, f"Altcraft answered the read with {meaning}", transient=transient)
        if status == 404 and code is None:
            return Read(None, f"HTTP 404 without Altcraft's answer: check the base URL, {self.base_url}")
        if not reply.ok:
            problem = f"Altcraft answered the read with HTTP {status}" + (f" ({meaning})" if code else "")
            return Read(None, problem, transient=status == 429 or status >= 500)
        if not reply.is_json:
            return Read(None, f"Altcraft sent an unreadable answer: {reply.snippet(80) or '(empty body)'}")
        return Read(None, f"Altcraft sent an unexpected answer: {reply.snippet(80)}")

    def _info(self, data: Mapping[str, Any], campaign_id: str) -> CampaignInfo:
        """A ``get_status`` or ``get`` answer's ``data`` as a `CampaignInfo`, tolerant of any field.

        The flags decide the phase; the status word (through `phases`) only when they are missing.
        """
        is_active, is_completed = flag_field(data, "is_active"), flag_field(data, "is_completed")
        status = text_field(data, "status")
        if is_completed is True:
            phase = P.COMPLETED
        elif is_active is not None:
            phase = P.ACTIVE if is_active else P.STOPPED
        else:
            phase = self.phase_of(status)
        if status is None and is_active is not None:
            # Some answers carry only the flags; show a readable state anyway.
            status = "Completed" if is_completed else ("Active" if is_active else "Inactive")
        extra: dict[str, Any] = {key: value for key in _EXTRA_FIELDS if (value := text_field(data, key))}
        extra.update(
            {key: flag for key, flag in (("is_active", is_active), ("is_completed", is_completed)) if flag is not None}
        )
        content = data.get("content")
        if isinstance(content, list):
            extra["messages"] = len(content)
        return CampaignInfo(
            id=text_field(data, "id") or campaign_id,
            name=text_field(data, "name"),
            state=status,
            phase=phase,
            kind=text_field(data, "type"),
            extra=extra,
        )

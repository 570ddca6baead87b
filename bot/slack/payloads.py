"""What each listener reads from Slack's payloads: small typed models of just those fields.

Be liberal in what is accepted and strict in what is acted on. Slack adds fields, and sends
``null`` where a workspace kind has no value (``enterprise`` outside Enterprise Grid, ``team`` in
org-wide installs, ``previous_view_id``…): every model ignores unknown fields and reads ``null``
as absent, so a field the app does not read can never make a payload fail. A payload is refused
(`PayloadRefused`) only when a field its listener needs is missing or of the wrong type.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

MAX_REQUEST_ID = 64
"""A button's value is a request id; anything longer was not written by this app."""

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
"""A Slack id (user, team, channel…): non-empty text."""


class PayloadRefused(ValueError):
    """A payload that lacks what its listener needs; the message says what, in one line."""


class Lenient(BaseModel):
    """Unknown fields are ignored and ``null`` reads as absent, at every level."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class Ref(Lenient):
    """An object Slack names by id (a team, a channel, an enterprise)."""

    id: Id


class UserRef(Lenient):
    """The user who acted; the name is only for display."""

    id: Id
    username: str | None = None
    name: str | None = None
    team_id: str | None = None

    @property
    def display_name(self) -> str | None:
        """The handle Slack gave, if any."""
        return self.username or self.name


class SlashCommand(Lenient):
    """``/stopcampaign …`` (form-encoded: every value is text)."""

    user_id: Id
    user_name: str | None = None
    text: str = ""
    team_id: str | None = None
    channel_id: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None


class Action(Lenient):
    """One element of ``actions`` in a ``block_actions`` payload."""

    action_id: str
    value: str | None = None


class Container(Lenient):
    """Where the clicked element sits (a message, an ephemeral message, a view)."""

    type: str | None = None
    channel_id: str | None = None
    is_ephemeral: bool | None = None


class BlockActions(Lenient):
    """A click on one of the app's buttons."""

    user: UserRef
    actions: list[Action] = Field(min_length=1)
    response_url: str | None = None
    trigger_id: str | None = None
    channel: Ref | None = None
    container: Container | None = None

    @property
    def action(self) -> Action:
        """The element that was clicked."""
        return self.actions[0]

    @property
    def channel_id(self) -> str | None:
        """The conversation of the clicked message (None for the Home tab and modals)."""
        if self.channel is not None:
            return self.channel.id
        return self.container.channel_id if self.container else None


class ButtonClick(BlockActions):
    """A click on a button that carries a request id (Stop, Cancel, Decline, Check again)."""

    @model_validator(mode="after")
    def _carries_a_request(self) -> ButtonClick:
        value = self.actions[0].value
        if not value or len(value) > MAX_REQUEST_ID:
            raise ValueError("the button carries no usable request id")
        return self

    @property
    def request_id(self) -> str:
        """The request the button belongs to (checked present by the model)."""
        return self.actions[0].value or ""


class DeclineClick(ButtonClick):
    """Decline on an approval card: it opens a form, so Slack's trigger is needed."""

    trigger_id: Id


class Shortcut(Lenient):
    """The global shortcut, or the Home tab's "Stop a campaign" button: a form to open."""

    user: UserRef
    trigger_id: Id
    channel_id: str | None = None
    channel: Ref | None = None

    @property
    def conversation(self) -> str | None:
        """The conversation it was used in, when Slack says."""
        return self.channel_id or (self.channel.id if self.channel else None)


class MessageShortcut(Shortcut):
    """The message shortcut: the form, filled in from the message it was used on."""

    message: dict[str, Any] = Field(default_factory=dict)


class ResponseUrl(Lenient):
    """One entry of a view submission's ``response_urls``."""

    response_url: str
    channel_id: str | None = None


class ViewState(Lenient):
    """A submitted view's input values, by block and action id."""

    values: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class View(Lenient):
    """The submitted view: what the listeners read of it."""

    callback_id: str | None = None
    private_metadata: str = ""
    state: ViewState = Field(default_factory=ViewState)

    def metadata(self) -> dict[str, Any]:
        """``private_metadata`` as the app wrote it (JSON), or empty when unreadable."""
        try:
            meta = json.loads(self.private_metadata or "{}")
        except ValueError:
            return {}
        return meta if isinstance(meta, dict) else {}

    def value(self, block: str, action: str, key: str = "value") -> str | None:
        """One input's value (``selected_option`` gives the option's value); None when absent."""
        element = self.state.values.get(block, {}).get(action)
        if not isinstance(element, dict):
            return None
        value = element.get(key)
        if key == "selected_option":
            value = value.get("value") if isinstance(value, dict) else None
        return value if isinstance(value, str) else None


class ViewSubmission(Lenient):
    """A submitted modal."""

    user: UserRef
    view: View
    team: Ref | None = None
    response_urls: list[ResponseUrl] = Field(default_factory=list)

    def response_url_for(self, channel: str | None) -> str | None:
        """The response URL Slack gave for `channel` (or the first), or None when it gave none."""
        chosen = next((u for u in self.response_urls if u.channel_id == channel), None)
        if chosen is None and self.response_urls:
            chosen = self.response_urls[0]
        return chosen.response_url if chosen else None


class HomeOpened(Lenient):
    """The ``app_home_opened`` event (inside its event_callback)."""

    user: Id
    tab: str = "home"


M = TypeVar("M", bound=Lenient)


class EventEnvelope(Lenient):
    """An event_callback: the event id (for redeliveries) and the event."""

    event_id: str | None = None


def read(model: type[M], body: Any) -> M:
    """`body` as `model`; raises `PayloadRefused` naming the first field that is missing or wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise PayloadRefused(describe(exc)) from None


def describe(error: ValidationError) -> str:
    """One line naming what is wrong (the first problem; never the payload's values)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the payload"
    kind = first["type"]
    if kind == "missing":
        return f"{where} is missing"
    if kind == "value_error":
        return str(first["msg"]).removeprefix("Value error, ")
    return f"{where} is not what Slack sends ({kind})"

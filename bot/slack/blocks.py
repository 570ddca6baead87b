"""Block Kit builders: the confirmation card in each of its states, and the outcome messages.

Every builder returns ``{"blocks": [...], "text": "..."}``: blocks within Slack's limits and a
plain `text` fallback for notifications and clients that cannot show blocks. Text that comes
from users or providers is escaped, so it can never mention, link or break the layout.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

from bot.core.models import CampaignInfo, Outcome, ProviderFacts, RequestState, StopRequest
from bot.core.ports import AnnounceProblem
from bot.core.recheck import RECHECKABLE
from bot.core.render import PHASE_WARNINGS, STATUS_ICONS, campaign_summary, outcome_text, plain_who, timestamp
from bot.core.results import Preview
from bot.slack.health import TOKEN_ERRORS

STOP_ACTION = "stopcampaign_confirm"
CANCEL_ACTION = "stopcampaign_cancel"
CHECK_AGAIN_ACTION = "stopcampaign_check_again"
"""On outcomes that could not say for sure: read the state again (or repeat a repeat-safe stop)."""
DECLINE_ACTION = "stopcampaign_decline"
"""On approval cards: an approver turns the request down (a form asks for an optional comment)."""

MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
MAX_TEXT = 3000

Message = dict[str, Any]
Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape Slack mrkdwn control characters (&, <, >) in untrusted text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def clip(text: str, limit: int) -> str:
    """Cut text to `limit` characters, marking the cut (never inside an escape such as ``&amp;``)."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def header(text: str) -> Block:
    """A header block (plain text, clipped)."""
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, MAX_HEADER), "emoji": True}}


def section(text: str, fields: list[str] | None = None) -> Block:
    """A mrkdwn section, with optional fields (at most 10, each clipped)."""
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": clip(f, MAX_FIELD)} for f in fields[:MAX_FIELDS]]
    return block


def context(*texts: str) -> Block:
    """A context block of mrkdwn lines (at most 10)."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(t, MAX_FIELD)} for t in texts[:10]]}


def user(actor_id: str) -> str:
    """A Slack mention for a Slack user id, the escaped name otherwise (console users)."""
    if actor_id[:1] in ("U", "W") and actor_id.isalnum():
        return f"<@{actor_id}>"
    return escape(actor_id)


def slack_date(request: StopRequest) -> str:
    """The expiry as a Slack date token (shown in the reader's time zone) with a UTC fallback."""
    epoch = int(request.expires_at.timestamp())
    return f"<!date^{epoch}^{{time}} ({{date_short_pretty}})|{timestamp(request.expires_at)}>"


def _message(blocks: list[Block], text: str) -> Message:
    return {"blocks": blocks[:MAX_BLOCKS], "text": clip(text, MAX_TEXT)}


def _request_fields(request: StopRequest, facts: ProviderFacts) -> list[str]:
    return [
        f"*Provider*\n{escape(facts.display_name)}",
        f"*Account*\n{escape(request.account)}",
        f"*API host*\n`{escape(facts.api_host)}`",
        f"*Campaign id*\n`{escape(request.campaign_id)}`",
        f"*Requested by*\n{user(request.requester.id)}",
        f"*Reason*\n{escape(request.reason) if request.reason else '_none given_'}",
    ]


def preview_text(preview: Preview | None) -> str:
    """The card's preview line: loading, the campaign, or why there is none."""
    if preview is None:
        return "*Campaign:* :hourglass_flowing_sand: asking the provider about this campaign…"
    if preview.info is None:
        return f"*Campaign:* no preview. {escape(preview.unavailable or '')}"
    return f"*Campaign:* {escape(campaign_summary(preview.info))}" + _phase_warning(preview.info)


def _phase_warning(info: CampaignInfo) -> str:
    warning = PHASE_WARNINGS.get(info.phase) if info.phase else None
    return f"\n:warning: *{warning}*" if warning else ""


def confirmation_card(
    request: StopRequest,
    facts: ProviderFacts,
    preview: Preview | None,
    approvers: str | None = None,
) -> Message:
    """The pending card with Stop / Cancel buttons (preview None: still loading).

    For a two-person request (`request.two_person`) it is the approval card posted in the
    channel: `approvers` says who may approve (Slack mentions, already escaped).
    """
    provider = facts.display_name
    stop_meaning = facts.stop_meaning
    if request.two_person:
        title = f"Approval needed: stop this {provider} campaign?"
        lead = (
            f"{user(request.requester.id)} asks to stop `{escape(request.campaign_id)}`. Nothing has been sent yet. "
            f"Waiting for approval from {approvers or 'anyone but the requester'} (two-person rule); "
            f"{user(request.requester.id)} can cancel."
        )
        stop_label, confirm_text = "Approve and stop", "Approve this stop"
    else:
        title = f"Stop this {provider} campaign?"
        lead = f"Nothing has been sent yet. Press *Stop campaign* to stop `{escape(request.campaign_id)}`."
        stop_label, confirm_text = "Stop campaign", "Stop it"
    blocks = [
        header(title),
        section(lead, _request_fields(request, facts)),
        section(preview_text(preview)),
        context(f"*What stopping means on {escape(provider)}:* {escape(stop_meaning)}"),
        {
            "type": "actions",
            "block_id": "stopcampaign_buttons",
            "elements": [
                {
                    "type": "button",
                    "action_id": STOP_ACTION,
                    "text": {"type": "plain_text", "text": stop_label, "emoji": True},
                    "style": "danger",
                    "value": request.id,
                    "confirm": {
                        "title": {"type": "plain_text", "text": "Stop the campaign?"},
                        "text": {
                            "type": "mrkdwn",
                            "text": clip(
                                f"This sends the stop to {escape(provider)} ({escape(request.account)}) for "
                                f"campaign `{escape(request.campaign_id)}`. "
                                + (f"It can be undone in {escape(provider)} (activate the campaign again)."
                                   if facts.undoable else "It cannot be undone."),
                                300,
                            ),
                        },
                        "confirm": {"type": "plain_text", "text": confirm_text},
                        "deny": {"type": "plain_text", "text": "Keep it running"},
                        "style": "danger",
                    },
                },
                {
                    "type": "button",
                    "action_id": CANCEL_ACTION,
                    "text": {"type": "plain_text", "text": "Cancel", "emoji": True},
                    "value": request.id,
                },
            ]
            + (
                [{"type": "button", "action_id": DECLINE_ACTION, "value": request.id,
                  "text": {"type": "plain_text", "text": "Decline", "emoji": True}}]
                if request.two_person
                else []
            ),
        },
        context(
            f"Expires {slack_date(request)} · "
            + (
                "a second person must approve"
                if request.two_person
                else f"only {user(request.requester.id)} can confirm"
            )
            + f" · request `{request.id}`"
            + (f" · {link}" if (link := dashboard_link(facts, request.campaign_id)) else "")
        ),
    ]
    text = (
        f"Stop {provider} campaign {request.campaign_id} on account {request.account}? "
        f"Press Stop campaign or Cancel (expires {timestamp(request.expires_at)})."
    )
    return _message(blocks, text)


def stopping_card(request: StopRequest, facts: ProviderFacts) -> Message:
    """The card while the provider call runs (no buttons: nothing can be clicked twice)."""
    provider = facts.display_name
    who = user(request.confirmed_by.id) if request.confirmed_by else "someone"
    blocks = [
        header(f"Stopping {provider} campaign…"),
        section(
            f":hourglass_flowing_sand: Sending the stop for `{escape(request.campaign_id)}` "
            f"({escape(request.account)}), confirmed by {who}."
        ),
        context(f"request `{request.id}`"),
    ]
    return _message(blocks, f"Stopping {provider} campaign {request.campaign_id}…")


def ended_card(request: StopRequest, facts: ProviderFacts, problems: Sequence[AnnounceProblem] = ()) -> Message:
    """The card once the request has ended: its outcome (with what its posts could not do), or
    why it was cancelled or expired."""
    provider = facts.display_name
    if request.state is RequestState.DONE and request.outcome is not None:
        message = outcome_message(request, request.outcome, facts)
        if problems:
            message["blocks"] = [*message["blocks"], context(*map(problem_text, problems))][:MAX_BLOCKS]
        return message
    if request.state is RequestState.CANCELLED and (request.end_reason or "").startswith("declined"):
        who = user(request.ended_by.id) if request.ended_by else "an approver"
        comment = (request.end_reason or "").removeprefix("declined").removeprefix(": ")
        said = f": “{escape(clip(comment, 300))}”" if comment else ""
        title, body = "Stop declined", f"Declined by {who}{said}. Nothing was sent to {escape(provider)}."
    elif request.state is RequestState.CANCELLED:
        who = user(request.ended_by.id) if request.ended_by else "someone"
        title, body = "Stop cancelled", f"Cancelled by {who}. Nothing was sent to {escape(provider)}."
    elif request.state is RequestState.EXPIRED:
        title = "Stop request expired"
        body = (
            f"Nobody confirmed before {timestamp(request.expires_at)}. Nothing was sent to "
            f"{escape(provider)}. Run `/stopcampaign` again if it still needs stopping."
        )
    else:
        title, body = f"Request {request.state.value}", "This request cannot be confirmed any more."
    blocks = [
        header(title),
        section(
            body,
            [
                f"*Provider*\n{escape(provider)}",
                f"*Account*\n{escape(request.account)}",
                f"*Campaign id*\n`{escape(request.campaign_id)}`",
            ],
        ),
        context(f"request `{request.id}`"),
    ]
    return _message(blocks, f"{title}: {provider} campaign {request.campaign_id}. {body}")


def conversation(channel: str) -> str:
    """A channel as a Slack link (a DM has no name worth showing)."""
    return "this direct message" if channel.startswith("D") else f"<#{channel}>"


def problem_text(problem: AnnounceProblem) -> str:
    """What one post of the outcome could not do, and what to do about it, in plain words."""
    where, error = conversation(problem.channel), escape(problem.error)
    invite = "invite @stopcampaign there (`/invite @stopcampaign`)"
    if problem.error in TOKEN_ERRORS:
        return (f":warning: Slack refuses the app's token ({error}): the post in {where} is kept and goes out "
                "once Slack accepts the token again.")
    if problem.state == "waiting":
        return f":hourglass_flowing_sand: The post in {where} is still owed (Slack answered {error}); tried again soon."
    if problem.target == "incident":
        return f":warning: {where} did not accept the post ({error}): {invite}."
    if problem.state == "rerouted":
        return (f":information_source: stopcampaign could not post in {where} itself ({error}), so the outcome "
                f"went through Slack's reply link; {invite} to get outcomes there and keep them up to date.")
    return f":warning: The outcome could not be posted in {where} ({error}): {invite}."


def dashboard_link(facts: ProviderFacts, campaign_id: str) -> str | None:
    """``<url|Open in Provider>`` for the campaign's page in the provider's dashboard, if it has one."""
    url = facts.dashboard_url(urllib.parse.quote(campaign_id, safe=""))
    if not url or any(c in url for c in "<>|"):
        return None
    return f"<{url}|Open in {escape(facts.display_name)}>"


def record_waiting(request: StopRequest, facts: ProviderFacts, *, permalink: str | None = None) -> Message:
    """A two-person request's live record until an approver acts (then "… is stopping …")."""
    provider = facts.display_name
    reason = f": {escape(clip(request.reason, 300))}" if request.reason else ""
    line = (
        f":raised_hand: {user(request.requester.id)} asks to stop {escape(provider)} campaign "
        f"`{escape(request.campaign_id)}` ({escape(request.account)}){reason}. Waiting for approval "
        f"(two-person rule) until {slack_date(request)}."
    )
    notes = [f"<{permalink}|Message in the channel>"] if permalink else []
    link = dashboard_link(facts, request.campaign_id)
    if link:
        notes.append(link)
    notes.append(f"request `{request.id}`")
    text = f"{plain_who(request.requester)} asks to stop {provider} campaign {request.campaign_id}: awaiting approval"
    return _message([section(line), context(*notes)], escape(clip(text, 2000)))


def record_started(request: StopRequest, facts: ProviderFacts, *, permalink: str | None = None) -> Message:
    """The live record while the stop runs: who is stopping what, and why (the outcome replaces it)."""
    provider = facts.display_name
    who = user(request.confirmed_by.id) if request.confirmed_by else "Someone"
    reason = f": {escape(clip(request.reason, 300))}" if request.reason else ""
    line = (
        f":hourglass_flowing_sand: {who} is stopping {escape(provider)} campaign `{escape(request.campaign_id)}` "
        f"({escape(request.account)}){reason}"
    )
    notes = [f"requested by {user(request.requester.id)}"]
    if permalink:
        notes.append(f"<{permalink}|Message in the channel>")
    link = dashboard_link(facts, request.campaign_id)
    if link:
        notes.append(link)
    notes.append(f"request `{request.id}`")
    text = f"{plain_who(request.confirmed_by)} is stopping {provider} campaign {request.campaign_id}"
    if request.reason:
        text += f": {request.reason}"
    return _message([section(line), context(*notes)], escape(clip(text, 2000)))


def outcome_message(
    request: StopRequest, outcome: Outcome, facts: ProviderFacts, *, permalink: str | None = None
) -> Message:
    """The outcome for everyone: who, what, the normalized status and the provider's detail."""
    provider = facts.display_name
    icon = STATUS_ICONS.get(outcome.status, "")
    requested = user(request.requester.id)
    confirmed = user(outcome.confirmed_by.id) if outcome.confirmed_by else "?"
    fields = [
        f"*Status*\n{icon} *{outcome.status.label}*",
        f"*Provider / account*\n{escape(provider)} / {escape(outcome.account)}",
        f"*Campaign*\n`{escape(outcome.campaign_id)}`",
        f"*Requested by*\n{requested}",
        f"*Confirmed by*\n{confirmed}",
        f"*Elapsed*\n{outcome.elapsed_ms / 1000:.2f} s · {outcome.attempts} attempt(s)",
        f"*Reason*\n{escape(request.reason) if request.reason else '_none given_'}",
    ]
    campaign = outcome.campaign or request.preview
    if campaign is not None and not campaign.is_empty():
        fields.append(f"*Campaign details*\n{escape(campaign_summary(campaign))}")
    if outcome.state_before or outcome.state_after:
        before = escape(outcome.state_before or "?")
        after = escape(outcome.state_after or "?")
        check = " (read back)" if outcome.verified else ""
        fields.append(f"*State*\n{before} → {after}{check}")
    body = f"{escape(outcome.status.description)}"
    if outcome.detail:
        body += f"\n{escape(outcome.detail)}"
    blocks = [
        header(f"{icon} {provider} campaign {outcome.campaign_id}: {outcome.status.label}"),
        section(body, fields),
    ]
    notes = []
    provider_detail = outcome.provider_detail()
    if provider_detail:
        notes.append(f"Provider said: {escape(provider_detail)}")
    if permalink:
        notes.append(f"<{permalink}|Message in the channel>")
    link = dashboard_link(facts, outcome.campaign_id)
    if link:
        notes.append(link)
    notes.append(f"request `{request.id}`")
    blocks.append(context(*notes))
    if outcome.status in RECHECKABLE:
        blocks.append({
            "type": "actions",
            "block_id": "recheck",
            "elements": [{"type": "button", "action_id": CHECK_AGAIN_ACTION, "value": request.id,
                          "text": {"type": "plain_text", "text": "Check again", "emoji": True}}],
        })
    text = escape(outcome_text(request, outcome, facts))  # reasons and provider texts are untrusted
    if permalink:
        text += f"\n{permalink}"
    return _message(blocks, text)


def notice(mrkdwn: str) -> Message:
    """A short notice built by the app (refusals): trusted mrkdwn, so mentions render."""
    return _message([section(mrkdwn)], mrkdwn)


def usage_error(problem: str) -> Message:
    """An ephemeral usage error with the usage shown in a code block."""
    first, _, rest = problem.partition("\n")
    blocks = [section(f":warning: {escape(first)}")]
    if rest:
        blocks.append(section(f"```{escape(rest)}```"))
    return _message(blocks, escape(problem))


def help_message(text: str) -> Message:
    """The help, as a code block."""
    return _message([section(f"```{escape(text)}```")], text)


def lines_message(title: str, lines: list[str], empty: str) -> Message:
    """Lines of text (history, an audit trail) in as few sections as Slack's limits allow."""
    if not lines:
        return _message([section(f"*{escape(title)}*"), section(escape(empty))], escape(f"{title}: {empty}"))
    blocks: list[Block] = [section(f"*{escape(title)}*")]
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > MAX_SECTION - 10:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(clip(escape(line), MAX_SECTION - 10))
    blocks.append(section("\n".join(chunk)))
    return _message(blocks, escape(title + "\n" + "\n".join(lines)))

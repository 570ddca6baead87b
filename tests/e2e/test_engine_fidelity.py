"""What the one stop engine must get right, over real HTTP: signed click → app → provider sandbox.

Each test drives a sandbox that misbehaves the way a provider can (a stop that takes effect
late, a 2xx that still shows the old status, a bare success, digits that are not ASCII, a huge
error body) and checks the stored and posted outcome and the stop calls that reached it.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot.core.models import OutcomeStatus, RequestState
from bot.sandbox.base import Fault, FaultKind
from bot.slack.blocks import STOP_ACTION
from bot.store.schema import audit_log, stop_requests
from tests.e2e.conftest import AppUnderTest, buttons, message_text

S = OutcomeStatus
HOLD = 60.0
WWT_SENDING = "53651994"
WWT_STOP = f"/api/campaigns/{WWT_SENDING}/stop"
WWT_READ = f"/api/campaigns/{WWT_SENDING}"


async def stop_campaign(app: AppUnderTest, text: str, arm: list[Fault]) -> tuple[str, S]:
    """Open a card, let the preview finish, arm `arm` on the provider, click Stop, wait for the posts."""
    ack = await app.command(text)
    request_id = buttons(ack.json())[STOP_ACTION]["value"]
    await app.runtime.tasks.wait_idle()  # the preview has read the campaign: the faults meet the stop
    provider = text.split()[0]
    for fault in arm:
        app.sandbox[provider].add_fault(fault)
    answer = await app.click(STOP_ACTION, request_id)
    assert answer.status_code == 200
    await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert stored.outcome is not None
    posts = [p for p in app.slack.outcomes() if request_id in message_text(p.body)]
    assert len(posts) == 2
    assert all(f"*{stored.outcome.status.label}*" in message_text(p.body) for p in posts)
    return request_id, stored.outcome.status


async def test_wwt_reports_its_own_late_applied_stop_as_stopped(app: AppUnderTest) -> None:
    """Stop #1 times out but takes effect after the first read; stop #2 answers 422: it was ours."""
    sim = app.sandbox["wwt"]
    late = Fault(kind=FaultKind.LOST_ANSWER, late=True, delay=HOLD, match=WWT_STOP, method="PUT")
    request_id, status = await stop_campaign(app, f"wwt {WWT_SENDING} late stop", [late])
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert status is S.STOPPED, stored.outcome.detail
    assert sim.campaigns[WWT_SENDING].state == "stopped"
    assert len(sim.calls_to(WWT_STOP, "PUT")) == 2


async def test_wwt_422_then_a_read_answering_404_is_not_found(app: AppUnderTest) -> None:
    refused = Fault(kind=FaultKind.STATUS, status=422, match=WWT_STOP, method="PUT")
    gone = Fault(kind=FaultKind.STATUS, status=404, match=WWT_READ, method="GET", times=None)
    _, status = await stop_campaign(app, f"wwt {WWT_SENDING} gone meanwhile", [refused, gone])
    assert status is S.NOT_FOUND


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "still-processing"])
async def test_wwt_2xx_showing_the_old_status_is_stopped_without_a_second_stop(
    app: AppUnderTest, applied: bool
) -> None:
    sim = app.sandbox["wwt"]
    old = json.dumps({"data": {"id": int(WWT_SENDING), "name": "Spring sale RCS", "status": "sending"}})
    answer = Fault(kind=FaultKind.STATUS, status=200, body=old, apply=applied, match=WWT_STOP, method="PUT")
    request_id, status = await stop_campaign(app, f"wwt {WWT_SENDING} stale answer", [answer])
    assert status is S.STOPPED
    assert len(sim.calls_to(WWT_STOP, "PUT")) == 1
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert stored.outcome.verified is applied  # the read-back is what verifies it
    assert stored.outcome.provider_status == ("stopped" if applied else "sending")  # the read-back's word


async def test_clevertap_bare_success_is_stopped_and_says_what_the_older_api_cannot_tell(app: AppUnderTest) -> None:
    bare = Fault(kind=FaultKind.STATUS, status=200, body='{"status": "success"}', apply=True)
    request_id, status = await stop_campaign(app, "clevertap 1457432766 bare success", [bare])
    assert status is S.STOPPED
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert "already stopped" in stored.outcome.detail


# Every numeric field a provider sends, with digits that are not ASCII: "²" passes str.isdigit()
# but int() refuses it; full-width digits are accepted by int() and must not be either.
ODD_DIGITS = ("\u00b2", "\uff11\uff12")  # "²" and full-width "12"


@pytest.mark.parametrize("digits", ODD_DIGITS)
@pytest.mark.parametrize(
    ("text", "body_of"),
    [
        ("clevertap 1457432766", lambda d: {"status": "fail", "error": "odd", "code": d}),
        (
            "sonarly 65f1a0c0e4b0a1b2c3d4e501",
            lambda d: {
                "success": True,
                "data": {"campaign": {"status": "stopped"}, "instancesStopped": d},
                "error": None,
                "traceId": d,
            },
        ),
        (
            "wwt 53651994",
            lambda d: {
                "data": {"id": d, "status": "stopped", "statistics": {"sent": d, "delivered": d}, "calculated_price": d}
            },
        ),
        ("altcraft 101", lambda d: {"data": None, "error": d, "error_text": d}),
    ],
    ids=["clevertap", "sonarly", "wwt", "altcraft"],
)
async def test_digits_that_are_not_ascii_never_abort_a_stop(
    app: AppUnderTest, text: str, body_of: object, digits: str
) -> None:
    assert callable(body_of)
    route = "deactivate" if text.startswith("altcraft") else "stop"
    odd = Fault(kind=FaultKind.STATUS, status=200, body=json.dumps(body_of(digits)), apply=True, match=route)
    request_id, _ = await stop_campaign(app, f"{text} odd digits", [odd])
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert not stored.outcome.detail.startswith("stopcampaign failed"), stored.outcome.detail


async def test_a_huge_error_body_is_kept_as_a_bounded_excerpt(app: AppUnderTest) -> None:
    huge = json.dumps({"status": "fail", "error": "x" * 5_000_000, "code": 21})
    fault = Fault(kind=FaultKind.STATUS, status=400, body=huge)
    request_id, status = await stop_campaign(app, "clevertap 1457432766 huge body", [fault])
    assert status is S.INVALID_REQUEST
    async with app.runtime.store.engine.connect() as conn:
        row = (await conn.execute(select(stop_requests.c.outcome_json).where(stop_requests.c.id == request_id))).one()
        audit = (
            await conn.execute(
                select(func.max(func.length(audit_log.c.detail_json))).where(audit_log.c.request_id == request_id)
            )
        ).scalar_one()
    assert len(row.outcome_json) < 20_000
    assert audit < 20_000


# A verdict at the start of a body past the 64 KiB cap is still read: the members before the cut.
HUGE = "x" * 5_000_000


@pytest.mark.parametrize(
    ("text", "route", "body", "expected"),
    [
        ("altcraft 101", "deactivate", {"error": 401, "error_text": HUGE}, S.UNAUTHORIZED),
        ("clevertap 1457432766", "stop", {"status": "success", "state": "stopped", "note": HUGE}, S.STOPPED),
    ],
    ids=["altcraft-error-in-a-200", "clevertap-success"],
)
async def test_a_verdict_at_the_start_of_a_body_past_the_cap_is_judged(
    app: AppUnderTest, text: str, route: str, body: dict[str, object], expected: S
) -> None:
    provider = text.split()[0]
    answer = Fault(kind=FaultKind.STATUS, status=200, body=json.dumps(body), match=route, apply=expected is S.STOPPED)
    request_id, status = await stop_campaign(app, f"{text} huge answer", [answer])
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert status is expected, stored.outcome.detail
    assert len(app.sandbox[provider].calls_to(route)) == 1
    assert len(stored.outcome.model_dump_json()) < 20_000


@pytest.mark.parametrize(
    ("text", "route", "body"),
    [
        ("altcraft 101", "deactivate", {"data": None, "error": 999, "error_text": "Unexpected failure"}),
        ("clevertap 1457432766", "stop", {"status": "fail", "error": "Something broke"}),
        ("sonarly 65f1a0c0e4b0a1b2c3d4e501", "stop", {"success": False, "data": None, "error": None}),
    ],
    ids=["altcraft-unknown-code", "clevertap-fail-without-code", "sonarly-success-false"],
)
async def test_a_failure_the_provider_states_in_a_2xx_is_a_provider_error_and_never_sent_again(
    app: AppUnderTest, text: str, route: str, body: dict[str, object]
) -> None:
    provider = text.split()[0]
    answer = Fault(kind=FaultKind.STATUS, status=200, body=json.dumps(body), match=route)
    request_id, status = await stop_campaign(app, f"{text} stated failure", [answer])
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert status is S.PROVIDER_ERROR, stored.outcome.detail
    assert len(app.sandbox[provider].calls_to(route)) == 1


async def test_altcraft_active_right_before_the_stop_and_inactive_after_a_429_is_stopped(app: AppUnderTest) -> None:
    """The deactivation took effect though its answer was a 429: the read before said Active."""
    limited = Fault(kind=FaultKind.STATUS, status=429, apply=True, match="deactivate")
    request_id, status = await stop_campaign(app, "altcraft 101 answered 429", [limited])
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.outcome is not None
    assert status is S.STOPPED, stored.outcome.detail
    assert "right before the stop" in stored.outcome.detail
    assert len(app.sandbox["altcraft"].calls_to("deactivate")) == 1

"""One full Slack flow per provider over real HTTP, including the preview filling the card."""

from __future__ import annotations

import pytest

from bot.core.models import RequestState
from bot.sandbox.base import Fault, FaultKind
from bot.slack.blocks import STOP_ACTION
from tests.e2e.conftest import AppUnderTest, StartApp, buttons, message_text

# provider → (command target, an active seeded campaign, (stop method, path part), an already stopped one)
FLOWS = {
    "sonarly": ("sonarly", "65f1a0c0e4b0a1b2c3d4e501", ("POST", "/stop"), "65f1a0c0e4b0a1b2c3d4e504"),
    "wwt": ("rcs", "53651994", ("PUT", "/stop"), "53651997"),
    "altcraft": ("altcraft", "101", ("POST", "/campaigns/deactivate"), "105"),
}


async def open_card(app: AppUnderTest, text: str) -> tuple[str, str]:
    ack = await app.command(text)
    card = ack.json()
    return buttons(card)[STOP_ACTION]["value"], message_text(card)


@pytest.mark.parametrize("provider", sorted(FLOWS))
async def test_full_flow_with_preview(app: AppUnderTest, provider: str) -> None:
    target, campaign, (method, stop_path), _ = FLOWS[provider]
    simulator = app.sandbox[provider]
    name = simulator.campaigns[campaign].name
    request_id, card = await open_card(app, f"{target} {campaign} wrong audience")
    assert "asking the provider" in card  # the ack does not wait for the preview

    update = (await app.slack.wait_for("response_url", 1))[0]
    assert update.body["replace_original"] is True
    preview_card = message_text(update.body)
    assert name.split(" (")[0] in preview_card
    assert STOP_ACTION in buttons(update.body)  # still confirmable
    stored = await app.runtime.store.get(request_id)
    assert stored is not None and stored.preview is not None and stored.preview.name == name

    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    await app.runtime.tasks.wait_idle()
    text = message_text(posts[0].body)
    assert "stopped" in text and campaign in text
    assert len(simulator.calls_to(stop_path, method)) == 1
    done = await app.runtime.store.get(request_id)
    assert done is not None and done.state is RequestState.DONE
    assert done.outcome is not None and done.outcome.status.value == "stopped"
    assert done.outcome.verified, done.outcome.detail  # read back after the stop
    assert "(read back)" in text


@pytest.mark.parametrize("provider", sorted(FLOWS))
async def test_preview_of_an_already_stopped_campaign_says_so(app: AppUnderTest, provider: str) -> None:
    target, _, _, stopped = FLOWS[provider]
    await open_card(app, f"{target} {stopped}")
    update = (await app.slack.wait_for("response_url", 1))[0]
    assert "already stopped" in message_text(update.body)


@pytest.mark.parametrize("provider", sorted(FLOWS))
async def test_a_slow_preview_says_so_and_the_stop_still_works(start_app: StartApp, provider: str) -> None:
    app = await start_app(PREVIEW_TIMEOUT_SECONDS="0.3")
    target, campaign, (method, stop_path), _ = FLOWS[provider]
    simulator = app.sandbox[provider]
    simulator.add_fault(Fault(kind=FaultKind.LATENCY, delay=30, times=1))
    request_id, _ = await open_card(app, f"{target} {campaign}")
    update = (await app.slack.wait_for("response_url", 1))[0]
    assert "did not answer within 0.3 s" in message_text(update.body)
    simulator.release_held()
    await app.click(STOP_ACTION, request_id)
    posts = await app.slack.wait_for_outcomes(2)
    assert "stopped" in message_text(posts[0].body)
    assert len(simulator.calls_to(stop_path, method)) == 1

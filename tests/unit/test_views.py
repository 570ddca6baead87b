"""The form and the Home tab pass slack_sdk's own model validation, within Slack's limits,
also with many accounts and long, untrusted text."""

from __future__ import annotations

from slack_sdk.models.views import View

from bot.core.models import ProviderHealth, ProviderKind
from bot.slack import views
from tests.unit.test_blocks import request

CLEVERTAP = ProviderKind("clevertap", "CleverTap", ("ct",), "10 digits, e.g. 1457432766")
SONARLY = ProviderKind("sonarly", "Sonarly", ("sonar",), "24 hex characters")


def check(view: dict[str, object]) -> View:
    model = View(**view)  # type: ignore[arg-type]
    model.validate_json()  # raises SlackObjectFormationError past any Slack limit
    return model


def test_the_form_validates_and_groups_accounts_by_provider() -> None:
    view = views.stop_form([(CLEVERTAP, ["prod", "eu"]), (SONARLY, ["default"])], channel_id="C0CHAN",
                           target="clevertap:eu", campaign_id="1457432766", reason="wrong segment")
    check(view)
    picker = view["blocks"][0]["element"]
    assert [g["label"]["text"] for g in picker["option_groups"]] == ["CleverTap", "Sonarly"]
    assert picker["initial_option"]["value"] == "clevertap:eu"
    assert view["blocks"][3]["element"]["response_url_enabled"] is True


def test_the_form_stays_within_limits_with_many_accounts_and_long_text() -> None:
    accounts = [f"account-{n:03d}-" + "x" * 60 for n in range(150)]
    view = views.stop_form([(CLEVERTAP, accounts)], campaign_id="9" * 300, reason="r" * 2000)
    check(view)
    assert len(view["blocks"][0]["element"]["options"]) == views.MAX_OPTIONS


def test_the_home_tab_validates_with_waiting_requests_and_history() -> None:
    mine = request(requester=request().requester)
    other = request(id="other", two_person=True, requester=request().requester.model_copy(update={"id": "U0BOB"}))
    health = ProviderHealth()
    health.answered(200)
    health.answered(503)
    home = views.home_view("U0ALICE", [mine, other], [mine] * 12, [mine, other] * 30,
                           [(CLEVERTAP, ["prod", "eu"])], lambda p, a: health if a == "prod" else None)
    check(home)
    text = str(home)
    assert "last answer" in text and "last error" in text and "HTTP 503" in text
    assert "`eu`: no call from this process yet" in text
    actions = [b for b in home["blocks"] if b["type"] == "actions"]
    labels = [[e["text"]["text"] for e in a["elements"]] for a in actions]
    assert labels == [["Stop a campaign"], ["Stop", "Cancel"], ["Approve and stop"]]
    assert len(home["blocks"]) <= 100

"""The policy: rule layering, entry validation, and every check with user groups."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import ValidationError

from bot.core.models import Actor, StopRequest, utcnow
from bot.core.policy import GroupLookupError, Policy, PolicyConfig, PolicyRefusal, PolicyRule, mentions

ALICE, BOB, CAROL = Actor(id="U0ALICE"), Actor(id="U0BOB"), Actor(id="U0CAROL")


class Groups:
    """A resolver with fixed groups; `broken` makes lookups fail."""

    def __init__(self, groups: dict[str, set[str]], broken: bool = False) -> None:
        self.groups = groups
        self.broken = broken
        self.lookups = 0

    async def members(self, group_id: str) -> frozenset[str]:
        self.lookups += 1
        if self.broken:
            raise GroupLookupError("ratelimited")
        return frozenset(self.groups.get(group_id, set()))


class GatedGroups:
    """A resolver whose lookups all wait at a gate until `open()`: a test sees which lookups
    started while none has finished (lookups one after the other never get past the first)."""

    def __init__(self, groups: dict[str, set[str]], broken: frozenset[str] = frozenset()) -> None:
        self.groups = groups
        self.broken = broken
        self.started: list[str] = []
        self._gate = asyncio.Event()
        self._changed = asyncio.Condition()

    async def members(self, group_id: str) -> frozenset[str]:
        async with self._changed:
            self.started.append(group_id)
            self._changed.notify_all()
        await self._gate.wait()
        if group_id in self.broken:
            raise GroupLookupError("ratelimited")
        return frozenset(self.groups.get(group_id, set()))

    async def wait_started(self, count: int) -> None:
        """Wait until `count` lookups are waiting at the gate together (the timeout only turns a
        lookup that never starts into a failure instead of a hang)."""
        async with asyncio.timeout(5), self._changed:
            await self._changed.wait_for(lambda: len(self.started) >= count)

    def open(self) -> None:
        self._gate.set()


def request(requester: Actor = ALICE, two_person: bool = False, provider: str = "clevertap") -> StopRequest:
    now = utcnow()
    return StopRequest(id="r1", provider=provider, account="prod", campaign_id="1", requester=requester,
                       two_person=two_person, created_at=now, expires_at=now + timedelta(minutes=5))


CONFIG = PolicyConfig.model_validate(
    {
        "requesters": ["S0ONCALL"],
        "channels": ["C0INCIDENT", "C0MARKETING"],
        "providers": {"clevertap": {"two_person": True, "confirmers": ["S0LEADS", "U0CAROL"]}},
        "accounts": {
            "clevertap:sandbox": {"two_person": False, "confirmers": None},
            "sonarly:prod": {"requesters": ["*"]},
        },
    }
)
GROUPS = Groups({"S0ONCALL": {"U0ALICE", "U0BOB"}, "S0LEADS": {"U0BOB"}})


def test_open_policy_defaults() -> None:
    policy = Policy()
    rule = policy.rule("clevertap", "prod")
    assert rule.requesters is None and rule.confirmers is None and rule.channels is None and not rule.two_person
    assert PolicyConfig().is_open and not CONFIG.is_open


def test_rules_layer_account_over_provider_over_defaults() -> None:
    policy = Policy(CONFIG, GROUPS)
    prod = policy.rule("clevertap", "prod")
    assert prod.two_person and prod.confirmers == ("S0LEADS", "U0CAROL") and prod.requesters == ("S0ONCALL",)
    sandbox = policy.rule("clevertap", "sandbox")
    assert not sandbox.two_person and sandbox.confirmers == ("S0LEADS", "U0CAROL")  # None inherits
    assert policy.rule("sonarly", "prod").requesters == ("*",)
    assert policy.rule("altcraft", "x").channels == ("C0INCIDENT", "C0MARKETING")


async def test_request_checks() -> None:
    policy = Policy(CONFIG, GROUPS)
    assert (await policy.check_request(ALICE, "clevertap", "prod", "C0INCIDENT")).two_person
    with pytest.raises(PolicyRefusal) as wrong_channel:
        await policy.check_request(ALICE, "clevertap", "prod", "C0RANDOM")
    assert wrong_channel.value.rule == "channels" and "<#C0INCIDENT>" in wrong_channel.value.message
    with pytest.raises(PolicyRefusal) as outsider:
        await policy.check_request(CAROL, "clevertap", "prod", "C0INCIDENT")
    assert outsider.value.rule == "requesters" and "<!subteam^S0ONCALL>" in outsider.value.message
    await policy.check_request(CAROL, "sonarly", "prod", "C0INCIDENT")  # "*" lets anyone ask
    await policy.check_request(ALICE, "clevertap", "prod", None)  # no channel (console): channel rule n/a


async def test_single_person_requester_must_be_a_confirmer() -> None:
    policy = Policy(PolicyConfig.model_validate({"confirmers": ["U0BOB"]}))
    with pytest.raises(PolicyRefusal) as refused:
        await policy.check_request(ALICE, "clevertap", "prod", "C1")
    assert refused.value.rule == "confirmers" and "ask one of <@U0BOB>" in refused.value.message
    await policy.check_request(BOB, "clevertap", "prod", "C1")


async def test_two_person_confirmation() -> None:
    policy = Policy(CONFIG, GROUPS)
    pending = request(ALICE, two_person=True)
    with pytest.raises(PolicyRefusal) as own:
        await policy.check_confirm(ALICE, pending)
    assert own.value.rule == "self_approval"
    await policy.check_confirm(BOB, pending)  # in S0LEADS
    await policy.check_confirm(CAROL, pending)  # named directly
    with pytest.raises(PolicyRefusal) as outsider:
        await policy.check_confirm(Actor(id="U0DAVE"), pending)
    assert outsider.value.rule == "confirmers"


async def test_single_person_confirmation_and_cancel() -> None:
    policy = Policy()
    pending = request(ALICE)
    await policy.check_confirm(ALICE, pending)
    with pytest.raises(PolicyRefusal, match="Only U0ALICE"):
        await policy.check_confirm(BOB, pending)
    policy.check_cancel(ALICE, pending)
    with pytest.raises(PolicyRefusal):
        policy.check_cancel(BOB, pending)


async def test_group_lookup_failure_refuses_clearly() -> None:
    policy = Policy(CONFIG, Groups({}, broken=True))
    with pytest.raises(PolicyRefusal) as refused:
        await policy.check_request(ALICE, "clevertap", "prod", "C0INCIDENT")
    assert refused.value.rule == "groups" and "ratelimited" in refused.value.message
    no_resolver = Policy(CONFIG, None)
    with pytest.raises(PolicyRefusal, match="cannot resolve"):
        await no_resolver.check_request(ALICE, "clevertap", "prod", "C0INCIDENT")


def test_entries_are_validated_and_mentions_normalized() -> None:
    rule = PolicyRule(requesters=["<@U0ALICE|alice>", "<!subteam^S0TEAM|@team>", "console:ops", "*"],
                      channels=["<#C0INC|incidents>"])
    assert rule.requesters == ["U0ALICE", "S0TEAM", "console:ops", "*"]
    assert rule.channels == ["C0INC"]
    for bad in (["alice"], ["u0alice"], [""], ["U"]):
        with pytest.raises(ValidationError):
            PolicyRule(requesters=bad)
    with pytest.raises(ValidationError):
        PolicyRule(channels=["#general"])
    with pytest.raises(ValidationError):
        PolicyConfig.model_validate({"approvers": ["U1"]})  # unknown key: a typo must not pass silently
    assert mentions(["U0A", "S0B", "*"]) == "<@U0A>, <!subteam^S0B>, anyone"


TWO_GROUPS = PolicyConfig.model_validate({"requesters": ["S0ONCALL", "S0LEADS"], "confirmers": ["S0LEADS"]})


async def test_requesters_and_confirmers_are_looked_up_at_the_same_time() -> None:
    """Both groups of a request's decision are asked before either answers, each once (S0LEADS is
    in both lists)."""
    groups = GatedGroups({"S0ONCALL": {"U0ALICE"}, "S0LEADS": {"U0ALICE"}})
    check = asyncio.create_task(Policy(TWO_GROUPS, groups).check_request(ALICE, "clevertap", "prod", None))
    await groups.wait_started(2)
    groups.open()
    await check
    assert sorted(groups.started) == ["S0LEADS", "S0ONCALL"]


async def test_confirmer_groups_of_a_confirmation_are_looked_up_at_the_same_time() -> None:
    config = PolicyConfig.model_validate({"two_person": True, "confirmers": ["S0ONCALL", "S0LEADS"]})
    members = {"S0ONCALL": set[str](), "S0LEADS": {"U0BOB"}}
    groups = GatedGroups(members)
    check = asyncio.create_task(Policy(config, groups).check_confirm(BOB, request(ALICE, two_person=True)))
    await groups.wait_started(2)
    groups.open()
    await check
    groups = GatedGroups(members)
    approvers = asyncio.create_task(Policy(config, groups).approver_ids(request(ALICE, two_person=True)))
    await groups.wait_started(2)
    groups.open()
    assert await approvers == ["U0BOB"]


async def test_viewer_groups_are_looked_up_at_the_same_time() -> None:
    config = PolicyConfig.model_validate({"requesters": ["S0ONCALL"], "viewers": ["S0AUDIT"]})
    groups = GatedGroups({"S0ONCALL": set(), "S0AUDIT": {"U0CAROL"}})
    view = asyncio.create_task(Policy(config, groups).may_view(CAROL, "clevertap", "prod"))
    await groups.wait_started(2)
    groups.open()
    assert await view


async def test_a_group_that_cannot_be_looked_up_refuses_only_when_no_other_lets_the_actor_in() -> None:
    groups = GatedGroups({"S0ONCALL": set(), "S0LEADS": {"U0ALICE"}}, broken=frozenset({"S0ONCALL"}))
    groups.open()
    policy = Policy(TWO_GROUPS, groups)
    await policy.check_request(ALICE, "clevertap", "prod", None)  # S0LEADS says yes: S0ONCALL's outage is moot
    with pytest.raises(PolicyRefusal) as unknown:
        await policy.check_request(BOB, "clevertap", "prod", None)  # S0ONCALL might have let BOB in
    assert unknown.value.rule == "groups" and "<!subteam^S0ONCALL> is unknown: ratelimited" in unknown.value.message

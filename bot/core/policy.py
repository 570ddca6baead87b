"""Who may stop what: per provider and account, who may request, who may confirm, where, and
whether a second person must approve.

The policy lives in the TOML file's ``[policy]`` table and is checked by the core, so every
front end obeys it. Entries are Slack user ids (``U…``/``W…``), Slack user group ids (``S…``,
resolved through a `GroupResolver`), console users (``console:<name>``) or ``*`` (anyone).
More specific tables win field by field: ``[policy.accounts."provider:account"]`` over
``[policy.providers.<provider>]`` over ``[policy]``.

With no policy at all, anyone may request and the requester confirms their own request.

Every user group one decision needs (its requesters and its confirmers, say) is looked up at
once, concurrently, and each group once: a slow Slack costs a decision the slowest lookup, never
the sum of them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, field_validator

from bot.core.models import Actor, StopRequest

_PERSON = re.compile(r"^(?:[UW][A-Z0-9]{2,}|S[A-Z0-9]{2,}|console:[^\s]+|\*)$")
_CHANNEL = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_MENTION = re.compile(r"^<[@#]?!?(?:subteam\^)?([A-Z0-9]+)(?:\|[^>]*)?>$")


class GroupLookupError(Exception):
    """A user group's members could not be learned."""


class GroupResolver(Protocol):
    """Resolves a user group id (``S…``) to the user ids in it."""

    async def members(self, group_id: str) -> frozenset[str]:
        """The group's members; raises `GroupLookupError` when they cannot be learned."""


_Lookup = frozenset[str] | GroupLookupError
"""A group's members, or why they could not be learned."""


def _groups(entries: Iterable[str]) -> list[str]:
    """The user group ids (``S…``) among policy entries."""
    return [e for e in entries if e.startswith("S") and e.isalnum()]


async def _lookup(resolver: GroupResolver, groups: list[str]) -> dict[str, _Lookup]:
    """Each group's members, or why they could not be learned, all asked at the same time."""

    async def one(group: str) -> _Lookup:
        try:
            return await resolver.members(group)
        except GroupLookupError as exc:
            return exc

    found = await asyncio.gather(*(one(g) for g in groups))
    return dict(zip(groups, found, strict=True))


class PolicyRefusal(Exception):
    """An action the policy does not allow; `rule` names the rule, the message says why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _normalize(entries: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    cleaned: list[str] = []
    for raw in entries:
        entry = raw.strip()
        mention = _MENTION.match(entry)
        if mention:
            entry = mention.group(1)
        if not pattern.match(entry):
            raise ValueError(f"{raw!r} is not {what}")
        cleaned.append(entry)
    return cleaned


class PolicyRule(BaseModel):
    """One table of the policy; a field left out is inherited from the less specific table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requesters: list[str] | None = None
    confirmers: list[str] | None = None
    channels: list[str] | None = None
    two_person: bool | None = None
    viewers: list[str] | None = None
    """Who else may read the account's requests (history, status) besides requesters and confirmers."""

    @field_validator("requesters", "confirmers", "viewers")
    @classmethod
    def _people(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return _normalize(value, _PERSON, "a Slack user id (U…), user group id (S…), console:<name> or *")

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return _normalize(value, _CHANNEL, "a Slack channel id (C…, G… or D…)")


class PolicyConfig(PolicyRule):
    """The whole ``[policy]`` table: defaults for every account, then per provider and per account."""

    providers: dict[str, PolicyRule] = {}
    accounts: dict[str, PolicyRule] = {}

    @property
    def is_open(self) -> bool:
        """True when nothing is configured (the default: anyone requests, the requester confirms)."""
        return self == PolicyConfig()


@dataclass(frozen=True)
class Rule:
    """The policy in force for one provider account (None: nobody restricted)."""

    requesters: tuple[str, ...] | None
    confirmers: tuple[str, ...] | None
    channels: tuple[str, ...] | None
    two_person: bool
    viewers: tuple[str, ...] | None = None


def mention(entry: str) -> str:
    """How Slack shows a policy entry: ``<@U…>``, ``<!subteam^S…>``, or the entry itself."""
    if entry == "*":
        return "anyone"
    if entry[:1] in ("U", "W") and entry.isalnum():
        return f"<@{entry}>"
    if entry[:1] == "S" and entry.isalnum():
        return f"<!subteam^{entry}>"
    return entry


def mentions(entries: Iterable[str]) -> str:
    """A list of entries as Slack mentions, comma separated."""
    return ", ".join(mention(e) for e in entries)


class Policy:
    """Evaluates the configured policy for requests, confirmations and cancellations."""

    def __init__(self, config: PolicyConfig | None = None, resolver: GroupResolver | None = None) -> None:
        self.config = config or PolicyConfig()
        self.resolver = resolver

    def rule(self, provider: str, account: str) -> Rule:
        """The rule for one account: account table over provider table over the defaults."""
        layers = [
            self.config.accounts.get(f"{provider}:{account}"),
            self.config.providers.get(provider),
            self.config,
        ]

        def pick(field: str) -> object:
            for layer in layers:
                if layer is not None and getattr(layer, field) is not None:
                    return getattr(layer, field)
            return None

        def as_tuple(value: object) -> tuple[str, ...] | None:
            return tuple(value) if isinstance(value, list) else None

        return Rule(
            requesters=as_tuple(pick("requesters")),
            confirmers=as_tuple(pick("confirmers")),
            channels=as_tuple(pick("channels")),
            two_person=bool(pick("two_person")),
            viewers=as_tuple(pick("viewers")),
        )

    async def check_request(self, actor: Actor, provider: str, account: str, channel_id: str | None) -> Rule:
        """The rule for a new request, or `PolicyRefusal` naming the rule that refuses it."""
        rule = self.rule(provider, account)
        where = f"{provider}:{account}"
        if rule.channels is not None and channel_id is not None and channel_id not in rule.channels:
            channels = ", ".join(f"<#{c}>" for c in rule.channels)
            raise PolicyRefusal("channels", f"Stops on {where} can only be asked in {channels}.")
        confirmers = None if rule.two_person else rule.confirmers
        groups = await self._resolve(actor, rule.requesters, confirmers)
        if rule.requesters is not None and not self._member(actor, rule.requesters, groups):
            raise PolicyRefusal(
                "requesters", f"You are not allowed to request stops on {where} (allowed: {mentions(rule.requesters)})."
            )
        if confirmers is not None and not self._member(actor, confirmers, groups):
            raise PolicyRefusal(
                "confirmers",
                f"You may not confirm stops on {where}, and it has no two-person approval: ask one of "
                f"{mentions(confirmers)} to run the command.",
            )
        return rule

    async def check_confirm(self, actor: Actor, request: StopRequest) -> None:
        """Raise `PolicyRefusal` unless `actor` may confirm (or approve) `request`."""
        rule = self.rule(request.provider, request.account)
        is_requester = actor.id == request.requester.id
        if request.two_person:
            if is_requester:
                raise PolicyRefusal(
                    "self_approval", "You asked for this stop: a different person must approve it (two-person rule)."
                )
            if actor.source == "console" and (rule.confirmers is None or actor.id not in rule.confirmers):
                # A shell could be anyone's, the requester's included: only a console user the
                # policy names as a confirmer may be the second person.
                raise PolicyRefusal(
                    "console_approval",
                    f"A console user approves two-person stops only when the policy names {actor.id} among the "
                    "confirmers; approve it in Slack.",
                )
            if rule.confirmers is not None and not await self._allowed(actor, rule.confirmers):
                raise PolicyRefusal(
                    "confirmers", f"Only {mentions(rule.confirmers)} can approve stops on "
                    f"{request.provider}:{request.account}."
                )
            return
        if not is_requester:
            raise PolicyRefusal(
                "requester_only", f"Only {request.requester.display} who asked for this stop can confirm it."
            )
        if rule.confirmers is not None and not await self._allowed(actor, rule.confirmers):
            raise PolicyRefusal(
                "confirmers",
                f"Only {mentions(rule.confirmers)} can confirm stops on {request.provider}:{request.account}.",
            )

    async def may_view(self, actor: Actor, provider: str, account: str) -> bool:
        """True when `actor` may read the requests of an account: anyone where anyone may request,
        else its requesters, confirmers and viewers (a group that cannot be resolved counts as no)."""
        rule = self.rule(provider, account)
        if rule.requesters is None:
            return True
        entries = rule.requesters + (rule.confirmers or ()) + (rule.viewers or ())
        try:
            return await self._allowed(actor, entries)
        except PolicyRefusal:
            return False

    async def check_view(self, actor: Actor, request: StopRequest) -> None:
        """Raise `PolicyRefusal` unless `actor` may read `request` (its requester and confirmer always may)."""
        people = {request.requester.id, request.confirmed_by.id if request.confirmed_by else None}
        if actor.id in people or await self.may_view(actor, request.provider, request.account):
            return
        raise PolicyRefusal(
            "viewers", f"You may not see requests on {request.provider}:{request.account} (the policy restricts them)."
        )

    async def approver_ids(self, request: StopRequest, limit: int = 20) -> list[str]:
        """The Slack users who may approve a two-person request, groups expanded (at most `limit`;
        none when anyone may approve, or when a group cannot be resolved now)."""
        confirmers = self.rule(request.provider, request.account).confirmers
        if not request.two_person or confirmers is None:
            return []
        groups = await _lookup(self.resolver, _groups(confirmers)) if self.resolver is not None else {}
        people: list[str] = []
        for entry in confirmers:
            if entry[:1] in ("U", "W") and entry.isalnum():
                people.append(entry)
            else:
                found = groups.get(entry)
                if isinstance(found, frozenset):
                    people.extend(sorted(found))
        unique = [p for i, p in enumerate(people) if p not in people[:i] and p != request.requester.id]
        return unique[:limit]

    def check_not_requester(self, actor: Actor, request: StopRequest) -> None:
        """The requester cannot decline their own request (they cancel it)."""
        if actor.id == request.requester.id:
            raise PolicyRefusal("requester_declines", "You asked for this stop: cancel it instead of declining it.")

    def check_cancel(self, actor: Actor, request: StopRequest) -> None:
        """Only the requester cancels their request."""
        if actor.id != request.requester.id:
            raise PolicyRefusal(
                "requester_only", f"Only {request.requester.display} who asked for this stop can cancel it."
            )

    async def _allowed(self, actor: Actor, entries: tuple[str, ...]) -> bool:
        return self._member(actor, entries, await self._resolve(actor, entries))

    async def _resolve(self, actor: Actor, *lists: tuple[str, ...] | None) -> dict[str, _Lookup]:
        """Look up, concurrently and once each, the groups of `lists` that could let `actor` in
        (none for a list that names `actor` or ``*``)."""
        groups: list[str] = []
        for entries in lists:
            if entries is None or "*" in entries or actor.id in entries:
                continue
            groups.extend(g for g in _groups(entries) if g not in groups)
        if not groups:
            return {}
        if self.resolver is None:
            raise PolicyRefusal("groups", "User groups are in the policy, but this front end cannot resolve them.")
        return await _lookup(self.resolver, groups)

    @staticmethod
    def _member(actor: Actor, entries: tuple[str, ...], groups: dict[str, _Lookup]) -> bool:
        """Whether `entries` let `actor` in, given the looked-up `groups`. A group whose members are
        unknown refuses with the reason, unless another entry already lets the actor in."""
        if "*" in entries or actor.id in entries:
            return True
        unknown: list[tuple[str, GroupLookupError]] = []
        for group in _groups(entries):
            found = groups[group]
            if isinstance(found, GroupLookupError):
                unknown.append((group, found))
            elif actor.id in found:
                return True
        if unknown:
            group, error = unknown[0]
            raise PolicyRefusal(
                "groups", f"Membership of {mention(group)} is unknown: {error}. Try again once Slack answers."
            )
        return False

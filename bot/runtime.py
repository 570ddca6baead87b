"""The only place that knows the concrete classes: builds the store, the adapters, the Slack
notifier and group resolver (when Slack is configured), the policy and the core service, and
runs the background loops of one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import AppConfig
from bot.core.outbox import POST_CAP_SECONDS
from bot.core.policy import GroupResolver, Policy
from bot.core.ports import Notifier, NullNotifier
from bot.core.service import StopService
from bot.providers.base import HttpOptions
from bot.providers.limits import LimiterFactory
from bot.providers.registry import ProviderRegistry
from bot.slack.client import create_lookup_client, create_web_client
from bot.slack.groups import SlackGroupResolver
from bot.slack.health import SlackHealth, check_at_start
from bot.slack.notifier import SlackNotifier
from bot.slack.responder import configure_response_urls
from bot.store.database import one_line
from bot.store.repository import Store
from bot.tasks import BackgroundTasks

log = logging.getLogger(__name__)


OUTBOX_INTERVAL = 2.0
"""How often the outbox is checked for posts that are due (each has its own backoff)."""


@dataclass(frozen=True)
class SlackParts:
    """The Slack Web API client the app posts with, when Slack is configured, and what this
    process knows is wrong with Slack."""

    client: AsyncWebClient
    health: SlackHealth
    groups: SlackGroupResolver
    """Policy user groups (its background lookups are stopped at close)."""


class Runtime:
    """The open store, the adapters, the service and the background tasks of one process."""

    def __init__(
        self,
        config: AppConfig,
        store: Store,
        registry: ProviderRegistry,
        service: StopService,
        limiters: LimiterFactory,
        slack: SlackParts | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.registry = registry
        self.service = service
        self.limiters = limiters
        self.slack = slack
        self.tasks = BackgroundTasks()
        self._loops: list[asyncio.Task[None]] = []
        self._delivery_passes = 0
        self._delivery_pass_done = asyncio.Condition()
        self._closing = asyncio.Event()

    @classmethod
    async def open(cls, config: AppConfig, *, announce_in_slack: bool = False) -> Runtime:
        """Open the store and build every part; with `announce_in_slack`, outcomes are posted in Slack."""
        settings = config.settings
        configure_response_urls(settings.slack_api_url)  # reply links only to Slack (or SLACK_API_URL's host)
        store = Store.from_url(settings.database_url)
        await store.initialize(migrate=settings.migrate_on_start)
        limiters = LimiterFactory(settings.redis_url, settings.redis_prefix)
        options = HttpOptions(
            limiters=limiters,
            timeout=settings.provider_timeout_seconds,
            deadline=settings.provider_deadline_seconds,
            preview_timeout=settings.preview_timeout_seconds,
        )
        registry = ProviderRegistry.build(config.accounts, config.defaults, options)
        await registry.warm_up()
        slack: SlackParts | None = None
        notifier: Notifier = NullNotifier()
        resolver: GroupResolver | None = None
        if announce_in_slack:
            client = create_web_client(settings)
            groups = SlackGroupResolver(
                create_lookup_client(settings), store, max_age_seconds=settings.group_members_max_age_seconds
            )
            slack = SlackParts(client, SlackHealth(settings.incident_channel), groups)
            notifier = SlackNotifier(client, settings.incident_channel, registry, slack.health)
            resolver = groups
        service = StopService(
            store,
            registry,
            notifier,
            policy=Policy(config.policy, resolver),
            ttl=timedelta(seconds=settings.request_ttl_seconds),
            preview_timeout=options.preview_timeout,
            execute_cap=max(300.0, settings.provider_deadline_seconds * 10),
            # Several heartbeats fit in the stuck threshold, so a live stop is never taken for dead.
            heartbeat_seconds=min(15.0, settings.stuck_executing_seconds / 4),
            resume_max_age=timedelta(seconds=settings.resume_max_age_seconds),
            outbox_lease_seconds=settings.outbox_lease_seconds,
        )
        return cls(config, store, registry, service, limiters, slack)

    @property
    def slack_health(self) -> SlackHealth:
        """What this process knows is wrong with Slack (empty when Slack is not configured)."""
        return self.slack.health if self.slack is not None else SlackHealth(self.config.settings.incident_channel)

    def start_background_loops(self, interval: float | None = None) -> None:
        """Expire pending requests, resume stuck ones and deliver the outbox (also right at start)."""
        settings = self.config.settings
        # Often enough that a pending request expires near its TTL and a stuck stop is resumed
        # well within twice the stuck threshold.
        every = interval or max(1.0, min(30.0, settings.request_ttl_seconds / 4, settings.stuck_executing_seconds / 2))
        self._loops.append(asyncio.create_task(self._expire_forever(every), name="expiry"))
        self._loops.append(asyncio.create_task(self._deliver_forever(OUTBOX_INTERVAL), name="outbox"))
        if self.slack is not None:
            self.tasks.spawn(check_at_start(self.slack.client, self.slack.health), name="slack-check")

    async def _expire_forever(self, every: float) -> None:
        stuck_after = timedelta(seconds=self.config.settings.stuck_executing_seconds)
        while True:
            # Resuming a confirmed stop comes before any housekeeping, and neither holds the other.
            try:
                await self.service.recover_stuck(stuck_after)
            except Exception as exc:
                log.warning("could not look for stuck stops: %s", one_line(exc))
            try:
                await self.service.expire_due()
            except Exception as exc:
                log.warning("could not expire pending requests: %s", one_line(exc))
            await asyncio.sleep(every)

    async def _deliver_forever(self, every: float) -> None:
        # Ends between passes when the process closes: a post cut off between Slack's answer and
        # its record would be posted again by the next process.
        while not self._closing.is_set():
            try:
                await self.service.deliver()
            except Exception as exc:
                log.warning("outbox delivery failed: %s", one_line(exc))
            async with self._delivery_pass_done:
                self._delivery_passes += 1
                self._delivery_pass_done.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), every)

    async def wait_for_delivery_pass(self) -> None:
        """Wait until a whole outbox pass has run after this call (tests wait on this, not on time)."""
        async with self._delivery_pass_done:
            target = self._delivery_passes + 2  # the pass running now may have started earlier
            await self._delivery_pass_done.wait_for(lambda: self._delivery_passes >= target)

    async def close(self, drain_timeout: float | None = None) -> None:
        """Finish background work (stops in flight get the provider deadline), then close everything."""
        if drain_timeout is None:
            drain_timeout = self.config.settings.provider_deadline_seconds + 5
        # No new stop starts; stops still waiting in the limiter are given up for the next process
        # to resume, stops with a call in flight get the deadline.
        self._closing.set()
        await self.service.shutdown(drain_timeout)
        for loop in self._loops:
            if loop.get_name() == "outbox":
                # Let the pass under way finish its post (each is bounded well inside its lease).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(loop), POST_CAP_SECONDS + 5)
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await self.tasks.drain(drain_timeout)
        if self.slack is not None:
            await self.slack.groups.aclose()
        await self.registry.aclose()
        await self.limiters.aclose()
        await self.store.close()

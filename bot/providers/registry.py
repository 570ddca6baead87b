"""The provider catalog: names and aliases → adapter classes, and the configured accounts of each.

Adding a provider means adding its adapter class to `ADAPTER_CLASSES`; nothing in the core
changes. `ProviderRegistry` is the core's `ProviderCatalog`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from bot.core.models import ProviderHealth, ProviderKind
from bot.core.ports import CampaignIdError
from bot.providers.accounts import AccountSettings
from bot.providers.altcraft import AltcraftAdapter
from bot.providers.base import HttpOptions, ProviderAdapter
from bot.providers.clevertap import CleverTapAdapter
from bot.providers.sonarly import SonarlyAdapter
from bot.providers.wwt import WwtAdapter

AdapterClass = type[ProviderAdapter[Any]]

ADAPTER_CLASSES: tuple[AdapterClass, ...] = (
    CleverTapAdapter,
    SonarlyAdapter,
    WwtAdapter,
    AltcraftAdapter,
)


def adapter_class(name: str) -> AdapterClass | None:
    """The adapter class for a provider name or alias (case-insensitive), or None."""
    for cls in ADAPTER_CLASSES:
        if cls.kind().named(name):
            return cls
    return None


class ProviderRegistry:
    """The adapters of every configured account, keyed by provider and account name."""

    def __init__(self, adapters: Sequence[ProviderAdapter[Any]], defaults: Mapping[str, str]) -> None:
        self._adapters: dict[tuple[str, str], ProviderAdapter[Any]] = {
            (adapter.name, adapter.account_name): adapter for adapter in adapters
        }
        self._defaults = dict(defaults)

    @classmethod
    def build(
        cls,
        accounts: Mapping[str, Mapping[str, AccountSettings]],
        defaults: Mapping[str, str],
        options: HttpOptions | None = None,
    ) -> ProviderRegistry:
        """One adapter per configured account."""
        adapters = []
        for provider, provider_accounts in accounts.items():
            klass = adapter_class(provider)
            if klass is None:
                raise KeyError(f"unknown provider {provider!r}")
            for account_name, account in provider_accounts.items():
                adapters.append(klass(account_name, account, options))
        return cls(adapters, defaults)

    # ----- the core's ProviderCatalog ------------------------------------------------------------

    def kinds(self) -> Sequence[ProviderKind]:
        """Every known provider, in registry order."""
        return [cls.kind() for cls in ADAPTER_CLASSES]

    def kind(self, name: str) -> ProviderKind | None:
        """The provider called `name` or one of its aliases."""
        klass = adapter_class(name)
        return klass.kind() if klass is not None else None

    def configured(self) -> Sequence[ProviderKind]:
        """Providers with at least one configured account, in registry order."""
        present = {name for (name, _) in self._adapters}
        return [cls.kind() for cls in ADAPTER_CLASSES if cls.name in present]

    def accounts(self, provider: str) -> list[str]:
        """Configured account names of a provider, default first."""
        names = sorted(account for (name, account) in self._adapters if name == provider)
        default = self._defaults.get(provider)
        if default in names:
            names.remove(default)
            names.insert(0, default)
        return names

    def default_account(self, provider: str) -> str | None:
        """The account used when a command names none, or None when there is no obvious one."""
        names = self.accounts(provider)
        if not names:
            return None
        default = self._defaults.get(provider)
        if default in names:
            return default
        return names[0] if len(names) == 1 else None

    def parse_campaign_id(self, provider: str, raw: str) -> str:
        """A campaign id checked by the provider's own rules; raises `CampaignIdError`."""
        klass = adapter_class(provider)
        if klass is None:
            raise CampaignIdError(f"unknown provider {provider!r}")
        return klass.parse_campaign_id(raw)

    def get(self, provider: str, account: str) -> ProviderAdapter[Any] | None:
        """The adapter of one account, or None when it is not configured."""
        return self._adapters.get((provider, account))

    def health(self, provider: str, account: str) -> ProviderHealth | None:
        """What this process saw of one account's API lately, or None when it is not configured."""
        adapter = self._adapters.get((provider, account))
        return adapter.health if adapter is not None else None

    # ----- running ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[ProviderAdapter[Any]]:
        return iter(self._adapters.values())

    async def warm_up(self) -> None:
        """Load the HTTP stack's lazily imported parts now, not during the first stop.

        httpx/httpcore/anyio import their network machinery on the first connection (~80 ms,
        far more under load), which would land between the rate limiter and the first stop's
        arrival. A connection attempt to a closed local port loads it and sends nothing.
        """
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]  # bound, never listening: refused at once
            async with httpx.AsyncClient() as client:
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"http://127.0.0.1:{closed_port}/", timeout=1)

    async def aclose(self) -> None:
        """Close every adapter's connections."""
        for adapter in self._adapters.values():
            await adapter.aclose()

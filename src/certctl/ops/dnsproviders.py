"""`certctl dns providers`: the DNS providers dns-lexicon ships and the options each reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProviderInfo", "describe", "list_providers"]


@dataclass(frozen=True)
class ProviderInfo:
    """One provider: its name, whether its packages are installed, and its options."""

    name: str
    installed: bool
    options: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "installed": self.installed, "options": self.options}


def list_providers() -> list[ProviderInfo]:
    """Every provider, from lexicon's own discovery (no options: that loads each module)."""
    from certctl.challenges.dns import lexicon_meta

    return [ProviderInfo(n, lexicon_meta.installed(n)) for n in lexicon_meta.provider_names()]


def describe(name: str) -> ProviderInfo:
    """One provider with its options (lexicon's metadata): variables, which are credentials."""
    from certctl.challenges.dns import lexicon_meta

    name = name.lower()
    options = [
        {"name": o.name, "env": o.env, "credential": o.credential, "help": o.help}
        for o in lexicon_meta.provider_options(name)
    ]
    return ProviderInfo(name, lexicon_meta.installed(name), options)

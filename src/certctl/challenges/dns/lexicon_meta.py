"""dns-lexicon's providers as certctl uses them: their options, credentials, and no network.

Everything here comes from lexicon's own provider metadata (each provider's
`configure_parser`), never from a hand-kept table. lexicon is imported only when a
provider is used or listed (the `dns` extra), and its public-suffix lookups
(tldextract) use the list bundled with tldextract: nothing is ever fetched.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from certctl.errors import BadInput

# "auto" finds the provider by asking public DNS for the zone's NS records: not unattended-safe
EXCLUDED = {"auto": "it looks the provider up in public DNS; name the provider instead"}
_SECRET_WORDS = ("auth", "token", "key", "secret", "password", "psw", "pass")
_URL_QUERY = re.compile(r"(\bhttps?://[^\s?'\"]+)\?[^\s'\"]*")
SCRUBBED = "[redacted]"


@dataclass(frozen=True)
class ProviderOption:
    """One option a provider reads, as lexicon declares it."""

    name: str  # e.g. auth_token
    help: str
    env: str  # e.g. LEXICON_POWERDNS_AUTH_TOKEN (lexicon's own naming)
    credential: bool  # a secret, or an account identifier
    needed: bool = False  # at least one of the provider's needed options must be given


def _lexicon() -> ModuleType:
    """lexicon's discovery module, imported now (the `dns` extra)."""
    try:
        from lexicon._private import discovery
    except ImportError:
        raise BadInput("DNS providers need dns-lexicon: pip install 'certctl[dns]'") from None
    use_bundled_suffix_list()
    return discovery


@cache
def _found() -> dict[str, bool]:
    """lexicon's providers and whether each one's extra packages are installed (read once)."""
    return dict(_lexicon().find_providers())


def provider_names() -> list[str]:
    """Every provider lexicon ships, less the ones certctl cannot run unattended."""
    return [name for name in _found() if name not in EXCLUDED]


def installed(name: str) -> bool:
    """Whether the provider's own extra dependencies are installed."""
    return _found().get(name, False)


def provider_module(name: str) -> ModuleType:
    """The provider's lexicon module; BadInput for a name lexicon does not know."""
    discovery = _lexicon()
    if name in EXCLUDED:
        raise BadInput(f"--lexicon-provider {name} is not supported: {EXCLUDED[name]}")
    if name not in _found():
        raise BadInput(f"unknown --lexicon-provider {name!r}: 'certctl dns providers' lists them")
    try:
        module: ModuleType = discovery.load_provider_module(name)
    except ImportError as e:
        raise BadInput(
            f"DNS provider {name} needs more packages ({e.name}): pip install 'dns-lexicon[{name}]'"
        ) from None
    return module


def provider_options(name: str) -> list[ProviderOption]:
    """The options the provider declares, in its order."""
    parser = argparse.ArgumentParser(add_help=False)
    provider_module(name).Provider.configure_parser(parser)
    options = []
    for action in parser._actions:
        dest = action.dest
        options.append(
            ProviderOption(
                name=dest,
                help=" ".join((action.help or "").split()),
                env=f"LEXICON_{name}_{dest}".upper().replace("-", "_"),
                credential=any(word in dest.lower() for word in _SECRET_WORDS),
            )
        )
    # lexicon marks no option required: its credentials are, else its options without default
    credentials = any(o.credential for o in options)
    defaults = {a.dest for a in parser._actions if a.default is not None}
    return [
        replace(o, needed=o.credential if credentials else o.name not in defaults) for o in options
    ]


# ---- credentials ---------------------------------------------------------------------------


def check_credentials_file(path: str) -> Path:
    """The file's absolute path, if it is readable and private (0600 or stricter)."""
    resolved = Path(path).expanduser().resolve()
    try:
        mode = resolved.stat().st_mode
    except OSError as e:
        raise BadInput(f"cannot read --dns-credentials {path}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        raise BadInput(f"--dns-credentials {path} is not a file")
    if mode & 0o077:
        raise BadInput(
            f"--dns-credentials {path} is readable by others (mode {stat.S_IMODE(mode):o}):"
            f" chmod 600 {path}"
        )
    return resolved


def read_credentials(
    provider: str, options: list[ProviderOption], file: str | None, env_names: list[str]
) -> dict[str, str]:
    """The provider's option values: from the file, else from the named environment variables."""
    by_key = {o.name: o for o in options} | {o.env.lower(): o for o in options}
    if file:
        path = check_credentials_file(file)
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInput(f"cannot read --dns-credentials {file}: {type(e).__name__}") from None
        raw = _parse_credentials(text, provider, file)
        values: dict[str, str] = {}
        for key, value in raw.items():
            option = by_key.get(key.lower()) or by_key.get(f"auth_{key.lower()}")
            if option is None:
                known = ", ".join(o.name for o in options)
                raise BadInput(
                    f"--dns-credentials {file}: {key!r} is not an option of DNS provider"
                    f" {provider} (its options: {known})"
                )
            values[option.name] = str(value)
        return {k: v for k, v in values.items() if v != ""}
    values = {}
    for option in options:
        if option.env in env_names and not os.environ.get(option.env):
            raise BadInput(
                f"environment variable {option.env} (option {option.name} of DNS provider"
                f" {provider}) is not set or empty"
            )
        if os.environ.get(option.env):
            values[option.name] = os.environ[option.env]
    return values


def _parse_credentials(text: str, provider: str, file: str) -> dict[str, Any]:
    """TOML (options at the top or under [provider]), or the provider's VAR=value lines."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return _parse_env_lines(text, file)
    table = data.get(provider, data)
    if not isinstance(table, dict):
        raise BadInput(f"--dns-credentials {file}: [{provider}] must be a table")
    flat = {k: v for k, v in table.items() if not isinstance(v, dict)}
    for key, value in flat.items():
        if not isinstance(value, str | int | float | bool):
            raise BadInput(f"--dns-credentials {file}: {key} must be a string")
    return flat


def _parse_env_lines(text: str, file: str) -> dict[str, str]:
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().replace("_", "").isalnum():
            raise BadInput(
                f"--dns-credentials {file} line {number}: expected TOML or VARIABLE=value lines"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def missing_credentials(
    provider: str, options: list[ProviderOption], values: Mapping[str, str]
) -> str | None:
    """A one-line refusal when none of the provider's needed options is given."""
    needed = [o for o in options if o.needed]
    if not needed or any(o.name in values for o in needed):
        return None
    names = ", ".join(f"{o.name} ({o.env})" for o in needed)
    return (
        f"DNS provider {provider} has no credentials: missing {names}; set"
        f" {'it' if len(needed) == 1 else 'them'} in --dns-credentials FILE or the environment"
        f" ('certctl dns providers {provider}' describes them)"
    )


# ---- no secret leaves, no list is fetched --------------------------------------------------


class Scrubber:
    """Replaces every credential value (and URL query strings) in a text."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._secrets = sorted({v for v in values.values() if len(v) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, SCRUBBED)
        return _URL_QUERY.sub(r"\1?…", text)

    @contextmanager
    def logging(self) -> Iterator[None]:
        """While lexicon runs: every log record (lexicon's, urllib3's) is scrubbed (--debug)."""
        scrub = self

        class _Filter(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                record.msg, record.args = scrub(record.getMessage()), None
                return True

        handlers = list(logging.getLogger().handlers)
        log_filter = _Filter()
        for handler in handlers:
            handler.addFilter(log_filter)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(log_filter)


def use_bundled_suffix_list() -> None:
    """Make tldextract (lexicon's, and any provider's) use its bundled public-suffix list.

    Its default extractor would download the list on first use and cache it in the
    user's home: certctl runs from cron, offline, and reaches only the provider's API.
    """
    import tldextract.tldextract as tld

    if getattr(tld.TLD_EXTRACTOR, "_certctl_offline", False):
        return
    offline = tld.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)
    offline._certctl_offline = True  # type: ignore[attr-defined]
    tld.TLD_EXTRACTOR = offline


def registered_domain_suffix(name: str) -> int:
    """How many labels of `name` are its public suffix (1 when the list knows none)."""
    import tldextract.tldextract as tld

    use_bundled_suffix_list()
    suffix = tld.TLD_EXTRACTOR(name, include_psl_private_domains=True).suffix
    return max(1, len(suffix.split("."))) if suffix else 1

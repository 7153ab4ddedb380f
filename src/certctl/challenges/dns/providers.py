"""DNS-01 through a DNS host's HTTP API, by dns-lexicon (100+ providers behind one interface).

The shared flow (publisher.py) does the rest: wait until every authoritative server
serves the values, remove exactly what was added, on every path. Credentials come
from a 0600 file or environment variables; every message and log line that lexicon
or requests produce is scrubbed of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dns.name

from certctl.challenges.dns import lexicon_meta, protocol
from certctl.challenges.dns.protocol import Server, show
from certctl.challenges.dns.publisher import GIVEN, Publisher, Record
from certctl.errors import BadInput, OperationFailed
from certctl.models import Challenge
from certctl.reporting import Reporter

API_TIMEOUT = 30.0  # seconds per HTTP request to the provider (lexicon sets none)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_USERINFO = re.compile(r"://[^/@\s]+@")


class NotThisZone(Exception):
    """The provider does not host this candidate zone."""


class ProviderSolver(Publisher):
    """Publish and remove TXT values through the provider's API, one client per zone."""

    def __init__(self, settings: Mapping[str, Any], reporter: Reporter) -> None:
        super().__init__(settings, "lexicon", reporter)
        self.provider = str(self.settings["lexicon_provider"])
        self.zone = self.settings.get("zone")
        self._clients: dict[str, Any] = {}
        self._values: dict[str, str] | None = None
        self._scrub = lexicon_meta.Scrubber({})

    def check(self) -> None:
        """Before an order is placed: the provider accepts its credentials' shape."""
        self._make("check." + (self.zone or "example.com"))

    # -- credentials and clients ---------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        if self._values is None:
            options = lexicon_meta.provider_options(self.provider)
            values = lexicon_meta.read_credentials(
                self.provider,
                options,
                self.settings.get("credentials_file"),
                list(self.settings.get("credentials_env", [])),
            )
            refusal = lexicon_meta.missing_credentials(self.provider, options, values)
            if refusal:
                raise BadInput(refusal)
            secret = {o.name for o in options if o.credential}
            self._scrub = lexicon_meta.Scrubber({k: v for k, v in values.items() if k in secret})
            self._values = values
        return self._values

    def _make(self, zone: str) -> Any:
        """A lexicon provider object for `zone` (not yet authenticated): no network."""
        from lexicon.config import ConfigResolver

        values = self._credentials()
        if not lexicon_meta.installed(self.provider):
            raise BadInput(
                f"DNS provider {self.provider} needs more packages:"
                f" pip install 'dns-lexicon[{self.provider}]'"
            )
        config = ConfigResolver().with_dict(  # type: ignore[no-untyped-call]
            {
                "provider_name": self.provider,
                "domain": zone,
                "ttl": protocol.RECORD_TTL,
                self.provider: values,
            }
        )
        module = lexicon_meta.provider_module(self.provider)
        try:
            with self._lexicon_running():
                return module.Provider(config)
        except Exception as e:
            raise BadInput(
                f"DNS provider {self.provider} refused its settings: {self._detail(e)}"
                f" ('certctl dns providers {self.provider}' lists its options)"
            ) from None

    def _client(self, zone: str, finding: str = "") -> Any:
        """An authenticated provider object for `zone`; NotThisZone when it hosts no such zone.

        `finding`: the record whose zone is being looked for (`zone` is only a candidate).
        """
        if zone not in self._clients:
            client = self._make(zone)
            what = f"find the zone of {finding}" if finding else "open the zone"
            where = f"DNS provider {self.provider}" + ("" if finding else f" (zone {zone})")
            self._call(where, what, client.authenticate, looking=True)
            self._clients[zone] = client
        return self._clients[zone]

    def _zone_of(self, name: dns.name.Name) -> str:
        """The zone holding `name` at the provider: --dns-zone, else the longest one it hosts."""
        if self.zone:
            try:
                self._client(self.zone)
            except NotThisZone as e:
                raise OperationFailed(
                    f"zone not found: DNS provider {self.provider} does not host zone"
                    f" {self.zone} ({e}); check --dns-zone and the account"
                ) from None
            return str(self.zone)
        text = show(name)
        labels = text.split(".")
        keep = lexicon_meta.registered_domain_suffix(text) + 1
        candidates = [".".join(labels[i:]) for i in range(0, max(1, len(labels) - keep + 1))]
        last = ""
        for candidate in candidates:
            try:
                self._client(candidate, finding=text)
            except NotThisZone as e:
                last = str(e)
                continue
            return candidate
        raise OperationFailed(
            f"zone not found: DNS provider {self.provider} hosts no zone holding {text}"
            f" (tried {', '.join(candidates)}; last answer: {last}); check the account,"
            " or pass --dns-zone"
        )

    # -- the publisher's steps -----------------------------------------------------------------

    def _publish(self, challenges: list[Challenge]) -> None:
        asked = self.nameservers[0] if self.nameservers else None
        located: dict[str, tuple[dns.name.Name, str]] = {}
        records = []
        for challenge in challenges:
            if challenge.record_name not in located:
                name = protocol.follow_cname(challenge.record_name, asked)
                located[challenge.record_name] = (name, self._zone_of(name))
            name, zone = located[challenge.record_name]
            records.append(
                Record(challenge.domain, name, challenge.validation, dns.name.from_text(zone))
            )
        for zone in dict.fromkeys(show(r.zone) for r in records if r.zone is not None):
            client = self._client(zone)
            batch = [r for r in records if r.zone is not None and show(r.zone) == zone]
            for record in batch:
                self._added.append(record)  # no answer may still have applied it: remove it too
                self._call(
                    f"DNS provider {self.provider} (zone {zone})",
                    f"add TXT {show(record.name)}",
                    client.create_record,
                    "TXT",
                    show(record.name),
                    record.value,
                )
            names = ", ".join(sorted({show(r.name) for r in batch}))
            self.reporter.info(f"{self.provider} added TXT {names} in zone {zone}")

    def _unpublish(self, records: list[Record]) -> None:
        failures = []
        for zone in dict.fromkeys(show(r.zone) for r in records if r.zone is not None):
            for record in [r for r in records if r.zone is not None and show(r.zone) == zone]:
                try:
                    client = self._client(zone)
                    # exactly this value: other TXT values at the name stay
                    self._call(
                        f"DNS provider {self.provider} (zone {zone})",
                        f"remove TXT {show(record.name)}",
                        client.delete_record,
                        None,
                        "TXT",
                        show(record.name),
                        record.value,
                    )
                except (OperationFailed, NotThisZone) as e:
                    failures.append(str(e))
        if failures:
            raise OperationFailed("; ".join(dict.fromkeys(failures)))

    def _servers_of(self, record: Record) -> tuple[str, list[Server], str]:
        zone = show(record.zone) if record.zone is not None else ""
        if self.nameservers:
            return zone, self.nameservers, GIVEN
        found, servers = protocol.resolver_nameservers(record.name)
        why = f"the NS records of zone {show(found)} found through the resolver, at port 53"
        return zone, servers, why

    # -- calling lexicon -----------------------------------------------------------------------

    def _call(self, where: str, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run one lexicon call; its failures become one scrubbed line naming provider and zone."""
        looking = kw.pop("looking", False)
        try:
            with self._lexicon_running():
                return fn(*args)
        except Exception as e:
            status = _status_of(e)
            detail = self._detail(e)
            kind = type(e).__name__
            if status in (401, 403):
                raise OperationFailed(
                    f"{where} refused the credentials (HTTP {status}) to {what}:"
                    f" check them in {self._source()}"
                ) from None
            if "Timeout" in kind:
                raise OperationFailed(
                    f"{where} did not answer within {API_TIMEOUT:g}s to {what}: retry later"
                ) from None
            if "ConnectionError" in kind:
                reason = _ERRNO.search(detail)
                raise OperationFailed(
                    f"{where} API unreachable to {what}"
                    f" ({reason.group(0) if reason else kind}): check the API address and"
                    " the provider's status, retry later"
                ) from None
            if looking:
                raise NotThisZone(f"HTTP {status}" if status else detail) from None
            raise OperationFailed(f"{where} failed to {what}: {detail}") from None

    def _detail(self, e: BaseException) -> str:
        status = _status_of(e)
        text = " ".join(str(e).split()) or type(e).__name__
        if status is not None:
            text = f"HTTP {status}: {_body_of(e) or text}"
        return self._scrub(_USERINFO.sub("://[redacted]@", text))[:300]

    def _source(self) -> str:
        file = self.settings.get("credentials_file")
        if file:
            return f"--dns-credentials {file}"
        names = list(self.settings.get("credentials_env", []))
        return "the environment" + (f" ({', '.join(names)})" if names else "")

    @contextmanager
    def _lexicon_running(self) -> Iterator[None]:
        """Every request bounded in time; every log line scrubbed of the credentials."""
        import requests

        original = requests.Session.request

        def bounded(session: Any, method: str, url: str, **kwargs: Any) -> Any:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = API_TIMEOUT
            return original(session, method, url, **kwargs)

        requests.Session.request = bounded  # type: ignore[method-assign,assignment]
        try:
            with self._scrub.logging():
                yield
        finally:
            requests.Session.request = original  # type: ignore[method-assign]


def _status_of(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _body_of(e: BaseException) -> str:
    """The provider's own error text (PowerDNS: {"error": "..."}), short and on one line."""
    response = getattr(e, "response", None)
    try:
        body = response.json() if response is not None else None
    except Exception:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "detail", "errors"):
            if body.get(key):
                return " ".join(str(body[key]).split())[:200]
    return ""

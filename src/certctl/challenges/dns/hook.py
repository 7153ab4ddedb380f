"""DNS-01 through the user's hook command: CERTCTL_ACTION=add|remove, no shell."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

from certctl.challenges.dns import protocol
from certctl.challenges.dns.protocol import Server, show
from certctl.challenges.dns.publisher import GIVEN, Publisher, Record
from certctl.errors import OperationFailed
from certctl.models import Challenge
from certctl.reporting import Reporter

HOOK_TIMEOUT = 300.0
HOOK_STDERR_LINES = 3


class HookSolver(Publisher):
    """Publish by running the user's command with CERTCTL_ACTION=add|remove (no shell)."""

    def __init__(self, settings: Mapping[str, Any], reporter: Reporter) -> None:
        super().__init__(settings, "hook", reporter)
        self.argv = shlex.split(self.settings["hook"])

    def _publish(self, challenges: list[Challenge]) -> None:
        asked = self.nameservers[0] if self.nameservers else None
        for challenge in challenges:
            name = protocol.follow_cname(challenge.record_name, asked)
            record = Record(challenge.domain, name, challenge.validation)
            self._run("add", record)
            self._added.append(record)
            self.reporter.info(f"{self.argv[0]} added TXT {show(name)}")

    def _unpublish(self, records: list[Record]) -> None:
        failures = []
        for record in records:
            try:
                self._run("remove", record)
            except OperationFailed as e:
                failures.append(str(e))
        if failures:
            raise OperationFailed("; ".join(failures))

    def _servers_of(self, record: Record) -> tuple[str, list[Server], str]:
        if self.nameservers:
            return "", self.nameservers, GIVEN  # the zone is the hook's business
        zone, servers = protocol.resolver_nameservers(record.name)
        why = f"the NS records of zone {show(zone)} found through the resolver, at port 53"
        return show(zone), servers, why

    def _run(self, action: str, record: Record) -> None:
        """Run the hook once; non-zero exit → OperationFailed with its stderr's last lines."""
        env = {
            **os.environ,
            "CERTCTL_ACTION": action,
            "CERTCTL_RECORD_NAME": show(record.name),
            "CERTCTL_RECORD_VALUE": record.value,
            "CERTCTL_DOMAIN": record.domain.removeprefix("*."),
        }
        what = f"DNS hook {self.argv[0]} ({action} TXT {show(record.name)} for {record.domain})"
        try:
            proc = subprocess.run(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=HOOK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OperationFailed(f"{what} did not finish within {HOOK_TIMEOUT:g}s") from None
        except OSError as e:
            raise OperationFailed(f"{what} could not run: {e.strerror}") from None
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            tail = " | ".join(line.strip() for line in lines[-HOOK_STDERR_LINES:] if line.strip())
            raise OperationFailed(
                f"{what} failed with exit {proc.returncode}: {tail or '(no stderr)'}"
            )

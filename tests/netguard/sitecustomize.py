"""Loaded by the test subprocesses that put tests/netguard on PYTHONPATH: network to loopback only.

With CERTCTL_TEST_NETGUARD=FILE, every attempt to resolve or reach anything but a loopback
address is refused (OSError) and written to FILE, so a test can assert none was made.
"""

from __future__ import annotations

import ipaddress
import os
import sys

_LOG = os.environ.get("CERTCTL_TEST_NETGUARD")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(event: str, target: object) -> None:
    assert _LOG is not None
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{event} {target!r} argv={sys.argv[1:3]}\n")
    raise OSError(f"netguard: {event} to {target!r} refused (tests reach loopback only)")


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event == "socket.getaddrinfo":
        if not _loopback(args[0]):
            _refuse(event, args[0])
    elif event in ("socket.connect", "socket.sendto"):
        address = args[1] if event == "socket.connect" else args[-1]
        if isinstance(address, tuple) and address and not _loopback(address[0]):
            _refuse(event, address)


if _LOG:
    sys.addaudithook(_hook)

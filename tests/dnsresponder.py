"""Tiny loopback DNS servers for failure cases BIND will not produce on demand.

`silent_udp()` is a bound UDP socket that never answers (a firewalled or hung
resolver); `rcode_responder(rcode)` answers every query with that RCODE
(SERVFAIL, REFUSED, ...), built by dnspython, over UDP on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.rcode


@contextmanager
def silent_udp() -> Iterator[tuple[str, int]]:
    """A UDP port on 127.0.0.1 that receives queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def rcode_responder(rcode: dns.rcode.Rcode) -> Iterator[tuple[str, int]]:
    """A UDP DNS server on 127.0.0.1 answering every query with `rcode` (no records)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            response = dns.message.make_response(query)
            response.set_rcode(rcode)
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()

"""Trust X-Forwarded-* only from the reverse proxy's own address (PROXY_FIX_TRUSTED).

werkzeug's ProxyFix believes whoever connects. Every container that can reach gunicorn
could then claim any client address (rate limits, the sessions page) or scheme. This
middleware applies ProxyFix only when the peer (REMOTE_ADDR) is one of the trusted proxies,
and removes the forwarded headers of any other peer, so nothing downstream (Flask-Login's
session fingerprint reads X-Forwarded-For itself) can read a forged value.

A trusted entry is an address, a network (CIDR) or a host name. Names are resolved when a
request comes from an address not yet known, at most once per RESOLVE_INTERVAL seconds:
nginx may start after web and come back with a new address, and `tasks.nginx` (Swarm) or a
headless Service (Kubernetes) answers one address per proxy replica.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_INTERVAL = 1.0
FORWARDED_HEADERS = ("HTTP_FORWARDED",)
FORWARDED_PREFIX = "HTTP_X_FORWARDED_"


def parse(entries: Iterable[str]) -> tuple[list[Network], list[str]]:
    """Split the trusted entries into networks (an address is a /32 or /128) and host names."""
    networks: list[Network] = []
    names: list[str] = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.append(entry)
    return networks, names


def resolve(name: str) -> set[Address]:
    """Return every address `name` resolves to (empty if it does not resolve now)."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        log.debug("trusted proxy %s does not resolve: %s", name, exc)
        return set()
    return {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos}


class TrustedProxyFix:
    """WSGI middleware: ProxyFix for requests from a trusted proxy, no forwarded headers else."""

    def __init__(
        self,
        app: WSGIApplication,
        trusted: Iterable[str],
        hops: int = 1,
        resolver: Callable[[str], set[Address]] = resolve,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.fixed = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        self.networks, self.names = parse(trusted)
        self.resolver, self.clock = resolver, clock
        self.resolved: frozenset[Address] = frozenset()
        self.resolved_at = float("-inf")
        self.lock = threading.Lock()

    def trusts(self, peer: str | None) -> bool:
        """Say whether `peer` (REMOTE_ADDR) is one of the trusted proxies."""
        try:
            address = ipaddress.ip_address((peer or "").split("%", 1)[0])
        except ValueError:
            return False  # a Unix socket or no peer: nobody to trust
        if any(address in network for network in self.networks):
            return True
        if not self.names:
            return False
        if address in self.resolved:
            return True
        self.refresh()
        return address in self.resolved

    def refresh(self) -> None:
        """Resolve the names again, at most once per RESOLVE_INTERVAL (one thread at a time)."""
        with self.lock:
            if self.clock() - self.resolved_at < RESOLVE_INTERVAL:
                return
            self.resolved_at = self.clock()
            self.resolved = frozenset().union(*(self.resolver(name) for name in self.names))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        forwarded = [k for k in environ if k.startswith(FORWARDED_PREFIX)]
        forwarded += [k for k in FORWARDED_HEADERS if k in environ]
        if not forwarded:
            # Nothing to believe or drop (healthchecks, direct calls): no lookup either, so a
            # proxy name that does not resolve yet (nginx starts after web) costs nothing.
            return self.app(environ, start_response)
        if self.trusts(environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        for key in forwarded:
            del environ[key]
        return self.app(environ, start_response)

"""Signed-in traffic from several clients while the stack changes under it, and its tally.

Each client is its own signed-in account with its own connection pool. It loops on
`GET /dashboard` (must be 200 and still signed in) with a form POST (`/preferences`, CSRF
token and same-origin Referer, as a browser sends it) every third request, until stopped.
Anything else is a failure: a 5xx, a connection error or timeout, or a signed-out answer.

One thing is retried, once, as browsers do (RFC 9112 section 9.3.1): a request on a kept-alive
connection that the server closed before answering (an nginx reload closes idle ones). The
tally counts these retries apart; a refused connection or a timeout is never retried.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import requests
from urllib3.exceptions import ProtocolError

from .conftest import Stack, new_username

POST_EVERY = 3


@dataclass
class Tally:
    """What the clients saw: every request's latency and every failure's kind."""

    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    retried: int = 0  # requests sent again after the server closed an idle connection
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, failure: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if failure:
                self.failures[failure] += 1

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def summary(self, label: str) -> str:
        ms = {p: round(self.percentile(p) * 1000) for p in (50, 95, 99, 100)}
        return (
            f"{label}: {self.requests} requests, {sum(self.failures.values())} failed "
            f"{dict(self.failures)}, {self.retried} retried; "
            f"latency ms p50={ms[50]} p95={ms[95]} p99={ms[99]} max={ms[100]}"
        )


class Traffic:
    """`with Traffic(stack, clients=6) as tally:` runs signed-in clients for the block."""

    def __init__(self, stack: Stack, clients: int = 6) -> None:
        self.stack = stack
        self.tally = Tally()
        self.stop = threading.Event()
        self.sessions = [self._signed_in() for _ in range(clients)]
        self.threads = [
            threading.Thread(target=self._run, args=(s, u, t), daemon=True)
            for s, u, t in self.sessions
        ]

    def _signed_in(self) -> tuple[requests.Session, str, str]:
        client = self.stack.session()
        username = new_username()
        self.stack.register(client, username)
        self.stack.login(client, username)
        token = self.stack.csrf_token(client, "/preferences")
        return client, username, token

    def _run(self, client: requests.Session, username: str, token: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                failure = self._send(client, username, token, post=n % POST_EVERY == 0)
            except requests.RequestException as exc:
                failure = type(exc).__name__
            self.tally.record(time.monotonic() - started, failure)

    def _send(self, client: requests.Session, username: str, token: str, post: bool) -> str | None:
        """Send one request, again once if the server closed the idle connection first."""
        try:
            return self._once(client, username, token, post)
        except requests.ConnectionError as exc:
            if not (exc.args and isinstance(exc.args[0], ProtocolError)):
                raise
            with self.tally.lock:
                self.tally.retried += 1
            return self._once(client, username, token, post)

    def _once(self, client: requests.Session, username: str, token: str, post: bool) -> str | None:
        """Send one request; return what was wrong with the answer, or None."""
        base = self.stack.base_url
        if post:
            form = {"csrf_token": token, "theme": "dark", "language": "en"}
            resp = client.post(
                base + "/preferences",
                data=form,
                headers={"Referer": base + "/preferences"},
                allow_redirects=False,
                timeout=30,
            )
            return None if resp.status_code == 302 else f"POST {resp.status_code}"
        resp = client.get(base + "/dashboard", allow_redirects=False, timeout=30)
        if resp.status_code == 302:
            return "signed out"
        if resp.status_code != 200:
            return f"GET {resp.status_code}"
        if not re.search(f"Welcome {username}!", resp.text):
            return "wrong page"
        return None

    def __enter__(self) -> Tally:
        for thread in self.threads:
            thread.start()
        # Let every client get going before the stack changes.
        deadline = time.monotonic() + 10
        while self.tally.requests < 2 * len(self.threads) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.tally

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        time.sleep(1)  # traffic continues a moment after the change has finished
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=40)
        for client, _, _ in self.sessions:
            client.close()

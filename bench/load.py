"""The load of `make bench`: keep-alive clients, readers looping on a page, a login flood.

Shared by the direct part (run.py: plain HTTP to Gunicorn) and the part through the real
nginx with TLS (stack.py). The clients are Python threads on the same 2 cores as the
servers: read the ratios, which are taken in the same run with the same clients.
"""

from __future__ import annotations

import http.client
import re
import resource
import ssl
import statistics
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

PASSWORD = "benchmark passphrase 42"  # noqa: S105 - a throwaway account on a throwaway db
FLOODERS = 16
# A flood login slower than this counts as a client timeout: "fast" 503/429 means well under.
FLOOD_TIMEOUT = 10.0


class Client:
    """One keep-alive HTTP(S) connection with a cookie jar just big enough for this app."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, timeout: float = 60) -> None:
        if tls is None:
            self.conn: http.client.HTTPConnection = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=timeout
            )
        else:
            self.conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
        # Flask-WTF checks a same-origin Referer on every POST over HTTPS (as browsers send).
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.cookies: dict[str, str] = {}
        self.status = 0
        self.served_by = ""  # the app's X-Served-By (EXPOSE_SERVED_BY): gunicorn answered

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, retry: bool = True
    ) -> str:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = self.origin + path
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # A worker that recycled (max_requests, on trees before issue 19): reconnect once.
            self.conn.close()
            if not retry:
                raise
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        text = response.read().decode()
        self.status = response.status
        self.served_by = response.getheader("X-Served-By") or ""
        for header in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if value and "Max-Age=0" not in header:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return text

    def form_token(self, path: str) -> str | None:
        """GET the form at `path` and return its CSRF token (None if refused, e.g. 429)."""
        page = self.request("GET", path)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        return token.group(1) if token else None

    def post_form(self, path: str, form: dict[str, str], patience: float = 0) -> str:
        """Fetch the form's token and post `form`; while nginx's limit_req answers 429,
        retry for up to `patience` seconds (set-up steps, not the measured load)."""
        deadline = time.monotonic() + patience
        while True:
            token = self.form_token(path)
            if token:
                text = self.request("POST", path, {**form, "csrf_token": token})
                if self.status != 429:
                    return text
            assert self.status == 429 and time.monotonic() < deadline, f"{path}: {self.status}"
            time.sleep(0.3)


def logged_in(port: int, username: str, tls: ssl.SSLContext | None = None) -> Client:
    """Return a client signed in as `username`."""
    client = Client(port, tls)
    client.post_form("/login", {"username": username, "password": PASSWORD}, patience=30)
    assert "Welcome" in client.request("GET", "/dashboard"), "login failed"
    return client


def drive(clients: list[Client], path: str, seconds: float) -> tuple[float, list[float]]:
    """Return (req/s, latencies) of `clients` looping on `path` for `seconds`."""
    stop = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in clients]

    def worker(n: int) -> None:
        while time.monotonic() < stop:
            start = time.perf_counter()
            clients[n].request("GET", path)
            latencies[n].append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [x for each in latencies for x in each]
    return len(flat) / seconds, flat


def flood(port: int, seconds: float, usernames: list[str]) -> Counter[int]:
    """Post correct logins from FLOODERS threads for `seconds`; return the answers' statuses."""
    stop = time.monotonic() + seconds
    answers: Counter[int] = Counter()

    def flooder(n: int) -> None:
        client = Client(port)
        while time.monotonic() < stop:
            client.cookies.clear()
            username = usernames[n % len(usernames)]
            client.post_form("/login", {"username": username, "password": PASSWORD})
            answers[client.status] += 1

    threads = [threading.Thread(target=flooder, args=(n,)) for n in range(FLOODERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@dataclass
class FloodResult:
    """What a flood through nginx got back, counted by who answered."""

    # (step, status, who): step "form" (GET /login) or "post"; who "nginx" or "app".
    answers: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    latencies: dict[tuple[str, int, str], list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)  # timeouts, resets, by kind
    cpu_seconds: float = 0.0  # this (flooding) process's own CPU


def flood_tls(
    port: int, cert: str, seconds: float, usernames: list[str], control: str = ""
) -> FloodResult:
    """Post correct logins from FLOODERS threads for `seconds` as a flood does (no pause,
    Retry-After ignored): fetch the form, post it, start again; count every answer by
    step, status and whether nginx or the app gave it, and every client error. `cert` is
    the server's certificate (PEM): an SSL context cannot be handed to another process.
    With `control` (a path nginx answers by itself), the same clients GET that instead: what
    the flood costs the machine (its clients, the proxy, nginx) without the app."""
    tls = ssl.create_default_context(cadata=cert)
    result = FloodResult()
    lock = threading.Lock()
    before = resource.getrusage(resource.RUSAGE_SELF)
    stop = time.monotonic() + seconds

    def record(step: str, client: Client, started: float) -> None:
        key = (step, client.status, "app" if client.served_by else "nginx")
        with lock:
            result.answers[key] += 1
            result.latencies.setdefault(key, []).append(time.perf_counter() - started)

    def flooder(n: int) -> None:
        client = Client(port, tls, timeout=FLOOD_TIMEOUT)
        username = usernames[n % len(usernames)]
        while time.monotonic() < stop:
            client.cookies.clear()
            try:
                started = time.perf_counter()
                if control:
                    client.request("GET", control, retry=False)
                    record("control", client, started)
                    continue
                page = client.request("GET", "/login", retry=False)
                record("form", client, started)
                token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
                if not token:
                    continue
                form = {"username": username, "password": PASSWORD, "csrf_token": token[1]}
                started = time.perf_counter()
                client.request("POST", "/login", form, retry=False)
                record("post", client, started)
            except (TimeoutError, OSError, http.client.HTTPException) as error:
                with lock:
                    result.errors[type(error).__name__] += 1
                client.conn.close()  # the next request opens a new connection

    threads = [threading.Thread(target=flooder, args=(n,)) for n in range(FLOODERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def p99(latencies: list[float]) -> float:
    """Return the 99th percentile in milliseconds."""
    return statistics.quantiles(latencies, n=100)[98] * 1000

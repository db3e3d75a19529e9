"""A throwaway second host for `make deploy HOST=...`: a container with its own Docker engine
and an SSH server (tests/host/host/Dockerfile), reached only over SSH.

The fixture generates a key pair for the run, starts the host with the capabilities that
work on this kernel (../shared/FIELD-NOTES.md: `privileged` does not), publishes its SSH,
HTTP and HTTPS ports on free ports of 127.0.0.1, and writes an ssh_config naming it
`testhost` (its key, its port, its host key in a known_hosts file): what a user's own
~/.ssh/config holds, passed as DEPLOY_SSH_CONFIG. Nothing reaches the host but through the
make targets; the tests only look at it (`docker exec`) to check what the deploy did. The
host, its volume and every image the run built here are removed at the end.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e.conftest import ROOT, Stack, stack_variables
from servers import free_port

HOST_IMAGE_DIR = Path(__file__).with_name("host")
USER = "deploy"
DEPLOY_TIMEOUT = 900  # seconds: a first deploy builds, ships ~1.5 GB and starts the stack


def docker(*args: str, check: bool = True, timeout: int = 300) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed:\n{proc.stderr}")
    return proc.stdout


@dataclass
class Host:
    """A running second host and the settings of the deploys made to it."""

    container: str
    ssh_config: Path
    env_file: Path
    env: dict[str, str]
    project: str
    http: Stack

    @property
    def url(self) -> str:
        return f"ssh://{USER}@testhost"

    def make(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a make target as the user would (output checked by the caller)."""
        proc = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT,
            check=False,
        )
        print(proc.stdout[-4000:], proc.stderr[-4000:])
        return proc

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a make target; its output (stdout and stderr) readable line by line."""
        return subprocess.Popen(
            ["make", "--no-print-directory", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def sh(self, script: str, check: bool = True) -> str:
        """Look at the host: run a shell snippet in it as the deploy user."""
        return docker("exec", "-u", USER, "-w", f"/home/{USER}", self.container, "sh", "-c",
                      script, check=check)  # fmt: skip

    def in_service(self, service: str, script: str) -> str:
        """Run a shell snippet in one of the deployed stack's containers on the host."""
        [container] = self.containers(service)[:1]
        return self.sh(f"docker exec {container} sh -c '{script}'")

    def containers(self, service: str) -> list[str]:
        """Return the ids of the stack's running containers of a service on the host."""
        labels = f"--filter label=com.docker.compose.project={self.project}"
        labels += f" --filter label=com.docker.compose.service={service}"
        return self.sh(f"docker ps -q {labels}").split()

    def started_at(self, service: str) -> str:
        [container] = self.containers(service)
        return self.sh(f"docker inspect -f '{{{{.Id}}}} {{{{.State.StartedAt}}}}' {container}")

    def image_of(self, service: str) -> str:
        [container] = self.containers(service)[:1]
        return self.sh(f"docker inspect -f '{{{{.Image}}}}' {container}").strip()

    def current_release(self) -> str:
        return self.sh("readlink flask-stack/current").strip().rsplit("/", 1)[-1]

    def trust_its_certificate(self, tmp: Path) -> None:
        """Let the HTTP client verify the certificate nginx serves (self-signed)."""
        ca = tmp / f"ca-{secrets.token_hex(3)}.pem"
        ca.write_text(self.in_service("nginx", "cat /etc/nginx/tls/tls.crt"))
        self.http.ca_file = str(ca)


def build_host_image() -> str:
    """Build the second host's image (tagged by its recipe, so a change rebuilds it)."""
    recipe = hashlib.sha256()
    for path in sorted(HOST_IMAGE_DIR.iterdir()):
        recipe.update(path.name.encode() + path.read_bytes())
    tag = f"flask-stack-test-host:{recipe.hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode:
        docker("build", "-q", "-t", tag, str(HOST_IMAGE_DIR), timeout=600)
    return tag


@contextmanager
def second_host(tmp: Path, docker_engine: bool = True) -> Iterator[Host]:
    """Start a second host; yield it with the settings to deploy to it; remove it after."""
    name = f"host{secrets.token_hex(4)}"
    key = tmp / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ports = {"ssh": free_port(), "http": free_port(), "https": free_port()}
    image = build_host_image()
    docker("volume", "create", name)
    try:
        docker(
            "run", "-d", "--name", name,
            # ../shared/FIELD-NOTES.md, "A second host, here"
            "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "--security-opt", "systempaths=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", f"{name}:/var/lib/docker",
            "-e", f"AUTHORIZED_KEY={(tmp / 'id_ed25519.pub').read_text().strip()}",
            "-e", f"NO_DOCKER={0 if docker_engine else 1}",
            "-p", f"127.0.0.1:{ports['ssh']}:22",
            "-p", f"127.0.0.1:{ports['http']}:80",
            "-p", f"127.0.0.1:{ports['https']}:443",
            image,
        )  # fmt: skip
        host_key = wait_for_host_key(name)
        known_hosts = tmp / f"known_hosts-{name}"
        known_hosts.write_text(f"[127.0.0.1]:{ports['ssh']} {host_key}\n")
        ssh_config = tmp / f"ssh_config-{name}"
        ssh_config.write_text(
            "Host testhost\n"
            "  HostName 127.0.0.1\n"
            f"  Port {ports['ssh']}\n"
            f"  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts}\n"
            "  StrictHostKeyChecking yes\n"
            "  LogLevel ERROR\n"
        )
        project = f"hoste2e{secrets.token_hex(3)}"
        env_file = tmp / f"deploy-{name}.env"
        # The settings a user puts in .env: the test's own limits (every client comes from
        # one address), two workers per replica, and X-Served-By.
        env_file.write_text(
            "RATELIMIT_LOGIN=1000/minute\nRATELIMIT_REGISTER=1000/minute\n"
            "WEB_CONCURRENCY=2\nEXPOSE_SERVED_BY=1\n"
        )
        inherited = {k: v for k, v in os.environ.items() if k not in stack_variables()}
        env = {
            **inherited,
            "DEPLOY_SSH_CONFIG": str(ssh_config),
            "ENV_FILE": str(env_file),
            "DEPLOY_PROJECT": project,
            "DEPLOY_MIN_FREE_GB": "2",
            # Local names of this run's images (removed at the end); pinned by ID on the host.
            "WEB_IMAGE": f"{project}-web:latest",
            "DB_IMAGE": f"{project}-db:latest",
            "BACKUP_IMAGE": f"{project}-backup:latest",
        }
        http = Stack(project, env, ports["https"], ports["http"], tmp)
        if docker_engine:
            wait_for(lambda: succeeds("exec", name, "docker", "info"))
        yield Host(name, ssh_config, env_file, env, project, http)
    finally:
        print(docker("logs", "--tail", "20", name, check=False))
        docker("rm", "-f", "-v", name, check=False)
        docker("volume", "rm", "-f", name, check=False)


def wait_for_host_key(container: str) -> str:
    """Return the host's SSH host key once sshd has made it."""
    path = "/etc/ssh/ssh_host_ed25519_key.pub"
    wait_for(lambda: succeeds("exec", container, "test", "-s", path))
    key = docker("exec", container, "cat", path).split()
    return f"{key[0]} {key[1]}"


def succeeds(*args: str) -> bool:
    return subprocess.run(["docker", *args], capture_output=True, check=False).returncode == 0


def wait_for(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"the second host did not come up within {timeout} s")


def remove_local_images(project: str) -> None:
    """Remove every image tag this run made here (`<project>-*`)."""
    refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).split()
    mine = [ref for ref in refs if ref.startswith(f"{project}-")]
    if mine:
        docker("image", "rm", "-f", *mine, check=False)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """One second host with Docker, shared by the ordered tests of a module."""
    with second_host(tmp_path_factory.mktemp("host")) as started:
        try:
            yield started
        finally:
            remove_local_images(started.project)

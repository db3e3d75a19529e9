"""One throwaway Swarm stack for the session: `make swarm-up` ... `make swarm-down`.

Runs the project's own make targets (what a user runs) with a unique stack name, free host
ports and test-only settings. The finalizer removes the stack with its volumes, secrets and
image tags, and leaves the swarm if swarm-up created it, whatever happened. Swarm changes
the shared Docker daemon: run this suite alone (`flock /tmp/docker.lock make swarm-e2e`).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from e2e.conftest import ROOT, Stack, isolated_env

UP_TIMEOUT = 900  # seconds: builds, swarm init, two deploy phases on 2 shared cores
# Written to the env file the make targets read (test_settings_from_the_env_file_are_in_effect).
ENV_FILE_SETTINGS = {
    "RATELIMIT_LOGIN": "1000/minute",
    "RATELIMIT_REGISTER": "1000/minute",
    "SESSION_IDLE_TIMEOUT": "1801",
}


def docker(*args: str, check: bool = True, timeout: int = 120) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


@dataclass
class Swarm:
    """The deployed stack: HTTP helpers (an e2e Stack) and Swarm-side inspection."""

    name: str
    env: dict[str, str]
    http: Stack
    up_output: str = ""
    images: set[str] = field(default_factory=set)  # tags this run made: removed at the end

    def make(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a Makefile target with the stack's settings; don't check."""
        return subprocess.run(
            ["make", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT,
            check=False,
        )

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"

    def image(self, service: str) -> str:
        """Return the image the service's spec names."""
        return docker(
            "service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            self.service(service),
        ).strip()  # fmt: skip

    def running_images(self, service: str) -> list[str]:
        """Return the image of every task that is running now."""
        out = docker(
            "service", "ps", "--filter", "desired-state=running",
            "--format", "{{.Image}} {{.CurrentState}}", self.service(service),
        )  # fmt: skip
        return [line.split()[0] for line in out.splitlines() if " Running " in f" {line} "]

    def container(self, service: str) -> str:
        """Return the id of one running container of the service."""
        ids = docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={self.service(service)}"
        ).split()
        assert ids, f"no running container of {service}"
        return ids[0]

    def exec(self, service: str, script: str) -> str:
        return docker("exec", self.container(service), "sh", "-c", script)


@pytest.fixture(scope="session")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    """Deploy the stack once with `make swarm-up`; `make swarm-down` it whatever happens."""
    compose_running = docker("ps", "-q", "--filter", "label=com.docker.compose.project").split()
    if compose_running:
        pytest.fail(
            "compose containers are running on this daemon: swarm init/leave would break "
            "their networks (FIELD-NOTES). Stop them (make down) and run again."
        )
    swarm_before = docker("info", "-f", "{{.Swarm.LocalNodeState}}").strip()
    tmp = tmp_path_factory.mktemp("swarm")
    name = f"e2eswarm{secrets.token_hex(3)}"
    # Settings in an env file, as a user keeps them in .env (the make targets read it as
    # compose does; ENV_FILE is compose's --env-file): never the developer's own .env.
    # As tests/e2e/compose.e2e.yml: every client comes from one address.
    env_file = tmp / "swarm.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in ENV_FILE_SETTINGS.items()))
    env = isolated_env(
        STACK_NAME=name,
        COMPOSE=f"docker compose -p {name}",  # no one-host stack of anyone else is touched
        ENV_FILE=str(env_file),
        EXPOSE_SERVED_BY="true",
        WEB_REPLICAS="3",
        WEB_CONCURRENCY="2",
        SWARM_TIMEOUT="400",
    )
    http = Stack(name, env, int(env["HTTPS_PORT"]), int(env["HTTP_PORT"]), tmp)
    stack = Swarm(name, env, http)
    try:
        up = stack.make("swarm-up")
        stack.up_output = up.stdout + up.stderr
        print(stack.up_output)
        if up.returncode != 0:
            print(docker("stack", "ps", "--no-trunc", name, check=False))
            for service in ("migrate", "web", "nginx", "pgbouncer"):
                print(
                    docker("service", "logs", "--tail", "30", stack.service(service), check=False)
                )
            pytest.fail("make swarm-up failed")
        ca = tmp / "stack-ca.pem"
        ca.write_text(stack.exec("nginx", "cat /etc/nginx/tls/tls.crt"))
        http.ca_file = str(ca)
        yield stack
    finally:
        images = docker("stack", "services", "--format", "{{.Image}}", name, check=False).split()
        down = stack.make("swarm-down", env={"SWARM_DOWN_VOLUMES": "yes"})
        print(down.stdout + down.stderr)
        for image in {*images, *stack.images}:
            if image.startswith("flask-stack-") and ":" in image and not image.endswith(":latest"):
                docker("image", "rm", image, check=False)  # the tag only; layers stay cached
        # The daemon is shared: whatever swarm-down did, leave it as it was found.
        swarm_after = docker("info", "-f", "{{.Swarm.LocalNodeState}}").strip()
        if swarm_before == "inactive" and swarm_after != "inactive":
            docker("swarm", "leave", "--force", check=False)
        assert down.returncode == 0, "make swarm-down failed"
        assert swarm_after == swarm_before, f"swarm-down left the node {swarm_after}"

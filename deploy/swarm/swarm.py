#!/usr/bin/env python3
"""The stack on Docker Swarm: `swarm.py up | deploy | down` (make swarm-up, swarm-deploy,
swarm-down). See docs/deploy-swarm.md.

    up      init a single-node swarm if there is none (and remember that we did), build the
            images, create missing secrets, deploy; returns when every service is healthy.
            The first deploy runs the migrations before any web task exists.
    deploy  build, run the migrations (one-shot, new image) and wait for them, then roll web
            over one task at a time (start-first); a failed update rolls back and this
            exits 1.
    down    remove the stack; leave the swarm only if `up` created it and no data is kept
            (its secrets hold the data's passwords). SWARM_DOWN_VOLUMES=yes also removes the
            stack's volumes and secrets (its data!): the tests use it.

Settings (environment; the make targets add .env's): STACK_NAME (flask-stack),
SWARM_ADVERTISE_ADDR (127.0.0.1), APP_VERSION (a label on the web image), SWARM_BUILD=no with
WEB_IMAGE=... (deploy an image that is already built), SWARM_TIMEOUT (s, 300), COMPOSE (the
one-host stack to stop first), and the stack's own variables (HTTP_PORT, WEB_REPLICAS, ...).

Everything it learns from Docker it reads as JSON (`--format '{{json .}}'`); the decisions
are small functions of that JSON, unit-tested in tests/deployment/test_swarm_orchestration.py.
Standard library only: the make targets run it with the system's python3.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STACK_FILE = HERE / "stack.yml"
CREATED_LABEL = "flask-stack.created-swarm"
DATA_LABEL = "flask-stack.data"
MIGRATE_MAX_ATTEMPTS = 5  # deploy.restart_policy.max_attempts of migrate (targets.yml)
Obj = dict[str, Any]


class SwarmError(Exception):
    """A failure to report in one line (and exit 1)."""


def log(message: str) -> None:
    print(f"swarm: {message}", flush=True)


# ---- talking to Docker -----------------------------------------------------------------
def docker(*args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
    """Run the docker CLI; return its stdout, or raise SwarmError with its stderr."""
    proc = subprocess.run(  # noqa: S603 - our own arguments
        ["docker", *args],  # noqa: S607 - the docker CLI on PATH, as the Makefile uses it
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else dict(env),
    )
    if check and proc.returncode != 0:
        raise SwarmError(f"docker {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


def json_lines(text: str) -> list[Obj]:
    """Parse the output of `--format '{{json .}}'`: one JSON object per line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def inspect(kind: str, *names: str) -> list[Obj]:
    """`docker <kind> inspect` (`docker inspect` for kind "") as JSON; [] when none match."""
    if not names:
        return []
    out = docker(*([kind] if kind else []), "inspect", *names, check=False)
    return json.loads(out) if out.strip() else []


def compose_down() -> None:
    """Take the one-host stack down (data kept): compose networks do not survive swarm
    init/leave here (FIELD-NOTES)."""
    command = shlex.split(os.environ.get("COMPOSE", "docker compose"))
    subprocess.run([*command, "down"], capture_output=True, check=False)  # noqa: S603


# ---- decisions (pure: unit-tested) -----------------------------------------------------
def replicas_ready(replicas: str) -> bool:
    """`docker stack services` Replicas ("3/3", "1/1 (max 1 per node)"): all running?"""
    running, _, wanted = replicas.split(" ", 1)[0].partition("/")
    return running == wanted


def migrate_outcome(service: Obj, tasks: Iterable[Obj], image: str) -> str | None:
    """Return "complete", "failed" or None (not yet) for the migrate tasks of the current
    spec: its force-update counter and the image being deployed."""
    force = service["Spec"]["TaskTemplate"].get("ForceUpdate", 0)
    states = [
        task["Status"]["State"]
        for task in tasks
        if task["Spec"].get("ForceUpdate", 0) == force
        and task["Spec"]["ContainerSpec"]["Image"] == image
    ]
    if "complete" in states:
        return "complete"
    if sum(state in ("failed", "rejected") for state in states) >= MIGRATE_MAX_ATTEMPTS:
        return "failed"
    return None


def update_status(service: Obj) -> tuple[str, str]:
    """Return (state, started at) of a service's last update; ("", "") before any."""
    status = service.get("UpdateStatus") or {}
    return status.get("State", ""), status.get("StartedAt", "")


def web_verdict(web: Obj, before: tuple[str, str]) -> str | None:
    """Return "failed" if this deploy's web update rolled back or paused, "updating" while it
    runs, None otherwise. A rollback of an earlier deploy (`before`) is old news."""
    state, started = update_status(web)
    if (state, started) == before:
        return None
    if state.startswith("rollback_") or state == "paused":
        return "failed"
    if state == "updating":
        return "updating"
    return None


def stale_tasks(service: Obj, running_tasks: Iterable[Obj]) -> list[Obj]:
    """Return the running tasks (`docker service ps --format json`) of another image than
    the spec's: an update not yet started, or old tasks still stopping."""
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@")[0]
    return [
        t
        for t in running_tasks
        if t["CurrentState"].startswith("Running") and t["Image"].split("@")[0] != image
    ]


def deploy_output(text: str) -> str:
    """Return what `docker stack deploy` said that matters: progress lines and the CLI's
    note about --detach are noise; anything else, such as "Ignoring unsupported options"."""
    noise = ("Updating service", "Creating")
    lines = [
        line
        for line in text.splitlines()
        if line and not line.startswith(noise) and "--detach=false" not in line
    ]
    return "\n".join(lines)


# ---- the pieces ------------------------------------------------------------------------
class Swarm:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = dict(environ)
        self.stack = self.env.setdefault("STACK_NAME", "flask-stack")
        self.timeout = float(self.env.get("SWARM_TIMEOUT", "300"))

    def svc(self, name: str) -> str:
        return f"{self.stack}_{name}"

    def info(self) -> Obj:
        return json.loads(docker("info", "--format", "{{json .Swarm}}"))

    def node_id(self) -> str:
        return self.info()["NodeID"]  # `docker node update self` is refused

    def ensure_swarm(self) -> None:
        if self.info()["LocalNodeState"] != "active":
            compose_down()
            address = self.env.get("SWARM_ADVERTISE_ADDR", "127.0.0.1")
            log(f"initialising a single-node swarm (advertise {address})")
            docker("swarm", "init", "--advertise-addr", address)
            # Remembered in the swarm itself, so `down` leaves only a swarm that `up` made.
            docker("node", "update", "--label-add", f"{CREATED_LABEL}=true", self.node_id())
        # db, redis and nginx keep data in local volumes: pin them to one labelled node.
        if not docker("node", "ls", "-q", "--filter", f"node.label={DATA_LABEL}=true").strip():
            docker("node", "update", "--label-add", f"{DATA_LABEL}=true", self.node_id())
            log(f"this node holds the data (label {DATA_LABEL}=true)")

    def build_image(self, name: str, *args: str) -> str:
        """Build and tag the image by content: a deploy rolls a service only when it changed."""
        docker("build", "-q", "-t", f"{name}:building", *args)
        [image] = inspect("image", f"{name}:building")
        tag = f"{name}:{image['Id'].removeprefix('sha256:')[:12]}"
        docker("tag", f"{name}:building", tag)
        docker("rmi", f"{name}:building")  # only the temporary tag
        return tag

    def build(self) -> None:
        if self.env.get("SWARM_BUILD", "yes") == "no":
            if not self.env.get("WEB_IMAGE"):
                raise SwarmError("SWARM_BUILD=no needs WEB_IMAGE")
        else:
            log("building the images")
            version = self.env.get("APP_VERSION", "dev")
            self.env["WEB_IMAGE"] = self.build_image(
                "flask-stack-web", "--target", "web", "--build-arg", f"APP_VERSION={version}",
                str(ROOT / "web"),
            )  # fmt: skip
        if not self.env.get("NGINX_IMAGE"):
            self.env["NGINX_IMAGE"] = self.build_image(
                "flask-stack-nginx", "-f", str(ROOT / "nginx" / "Dockerfile"), str(ROOT)
            )
        if not self.env.get("PGBOUNCER_IMAGE"):
            self.env["PGBOUNCER_IMAGE"] = self.build_image(
                "flask-stack-pgbouncer", str(ROOT / "deploy" / "pgbouncer")
            )
        images = (self.env[k] for k in ("WEB_IMAGE", "NGINX_IMAGE", "PGBOUNCER_IMAGE"))
        log(f"images: {' '.join(images)}")

    def secrets(self) -> None:
        """Create missing secrets; deploy the newest version of each (GROUP_VERSION=N)."""
        manage = [sys.executable, str(HERE / "manage_secrets.py")]
        if subprocess.run([*manage, "ensure"], env=self.env, check=False).returncode:  # noqa: S603
            raise SwarmError("the secrets could not be made (above)")
        versions = subprocess.run(  # noqa: S603
            [*manage, "versions"], env=self.env, capture_output=True, text=True, check=True
        ).stdout
        self.env.update(line.split("=", 1) for line in versions.split())

    def stack_deploy(self, **overrides: str) -> None:
        # --resolve-image never: the images are local (no registry); a multi-node swarm
        # needs them pushed to a registry instead (docs/deploy-swarm.md).
        env = {**self.env, **overrides}
        command = ["stack", "deploy", "--resolve-image", "never", "--prune"]
        proc = subprocess.run(  # noqa: S603
            ["docker", *command, "-c", str(STACK_FILE), self.stack],  # noqa: S607
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        said = deploy_output(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise SwarmError(f"docker stack deploy failed:\n{said}")
        if said:
            print(said, flush=True)

    def service(self, name: str) -> Obj | None:
        found = inspect("service", self.svc(name))
        return found[0] if found else None

    # ---- waiting -----------------------------------------------------------------------
    def wait(self, what: str, check: Any) -> Any:
        """Call check() every second until it returns a value; raise after the timeout."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            result = check()
            if result is not None:
                return result
            time.sleep(1)
        raise SwarmError(f"{what} within {self.timeout:.0f} s")

    def wait_migrate(self) -> None:
        def outcome() -> str | None:
            service = self.service("migrate")
            task_ids = docker("service", "ps", "-q", "--no-trunc", self.svc("migrate")).split()
            if not service or not task_ids:
                return None
            return migrate_outcome(service, inspect("", *task_ids), self.env["WEB_IMAGE"])

        if self.wait("the migrations did not finish", outcome) == "failed":
            print(docker("service", "logs", "--tail", "30", self.svc("migrate"), check=False))
            raise SwarmError("the migrations failed: web was not updated")
        log("migrations applied")

    def converged(self, before: tuple[str, str]) -> bool | None:
        """True once every long-running service runs all its replicas on its current spec;
        raises SwarmError when this deploy's web update rolled back."""
        web = self.service("web")
        verdict = web_verdict(web, before) if web else None
        if verdict == "failed":
            self.report_rollback(before)
        if verdict == "updating":
            return None
        return self.serving(exclude=self.svc("migrate"))

    def serving(self, only: str = "", exclude: str = "") -> bool | None:
        """True once the long-running services (or `only` one) run every replica on their
        current spec; None otherwise."""
        listed = docker("stack", "services", "--format", "{{json .}}", self.stack)
        for entry in json_lines(listed):
            if entry["Name"] == exclude or (only and entry["Name"] != only):
                continue
            if not replicas_ready(entry["Replicas"]):
                return None
            [service] = inspect("service", entry["Name"])
            tasks = docker(
                "service", "ps", "--filter", "desired-state=running", "--format", "{{json .}}",
                entry["Name"],
            )  # fmt: skip
            if stale_tasks(service, json_lines(tasks)):
                return None
        return True

    def report_rollback(self, before: tuple[str, str]) -> None:
        """Wait for Swarm's rollback to finish and the old version to serve on every
        replica again (a caller finds it serving), then fail."""
        deadline = time.monotonic() + self.timeout
        web = self.service("web") or {}
        while update_status(web)[0] == "rollback_started" and time.monotonic() < deadline:
            time.sleep(1)
            web = self.service("web") or {}
        while not self.serving(only=self.svc("web")) and time.monotonic() < deadline:
            time.sleep(1)
        tasks = docker(
            "service", "ps", "--no-trunc", "--format",
            "{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}", self.svc("web"), check=False,
        )  # fmt: skip
        print("\n".join(tasks.splitlines()[:8]), file=sys.stderr)
        status = web.get("UpdateStatus") or {}
        raise SwarmError(
            f"web: the update failed; Swarm rolled it back ({status.get('State')}: "
            f"{status.get('Message')})"
        )

    # ---- the commands --------------------------------------------------------------------
    def deploy(self) -> None:
        started = time.monotonic()
        self.build()
        self.secrets()
        if self.service("migrate"):
            log(f"running the migrations ({self.env['WEB_IMAGE']})")
            docker(
                "service", "update", "--detach", "--quiet", "--no-resolve-image", "--force",
                "--image", self.env["WEB_IMAGE"], self.svc("migrate"),
            )  # fmt: skip
        else:
            # First deploy: everything but web and nginx, so no web task runs before the schema.
            log("first deploy: the data services and the migrations")
            self.stack_deploy(WEB_REPLICAS="0", NGINX_REPLICAS="0")
        self.wait_migrate()
        log("deploying the stack (web rolls one task at a time)")
        web = self.service("web")
        before = update_status(web) if web else ("", "")
        self.stack_deploy()
        time.sleep(2)  # let the orchestrator start the update before judging it
        try:
            self.wait("the stack did not converge", lambda: self.converged(before))
        except SwarmError as error:
            if "converge" in str(error):
                print(docker("stack", "services", self.stack, check=False), file=sys.stderr)
            raise
        log(f"every service is up ({time.monotonic() - started:.0f} s)")
        print(
            docker("stack", "services", "--format", "  {{.Name}} {{.Replicas}} {{.Image}}",
                   self.stack),
            end="",
        )  # fmt: skip

    def up(self) -> None:
        self.ensure_swarm()
        self.deploy()

    def down(self) -> None:
        if self.info()["LocalNodeState"] != "active":
            log("not in swarm mode: nothing to remove")
            return
        docker("stack", "rm", self.stack, check=False)
        label = f"label=com.docker.stack.namespace={self.stack}"
        deadline = time.monotonic() + 120
        while (
            docker("ps", "-aq", "--filter", label).strip()
            or docker("network", "ls", "-q", "--filter", label).strip()
        ):
            if time.monotonic() > deadline:
                raise SwarmError("the stack's containers did not go within 120 s")
            time.sleep(1)
        log(f"stack {self.stack} removed")
        if self.env.get("SWARM_DOWN_VOLUMES", "no") == "yes":
            volumes = [f"{self.stack}_{v}" for v in ("pgdata", "redis-data", "tls")]
            docker("volume", "rm", *volumes, check=False)
            owned = f"label=flask-stack.stack={self.stack}"
            secrets = docker("secret", "ls", "-q", "--filter", owned).split()
            if secrets:
                docker("secret", "rm", *secrets)
            log(f"volumes and secrets of {self.stack} removed")
        [node] = inspect("node", self.node_id())
        if node["Spec"].get("Labels", {}).get(CREATED_LABEL) == "true":
            # Leaving would delete the swarm's secrets, and with them the only copy of the
            # passwords of the data the volumes keep: the next swarm-up could not open it.
            if inspect("volume", f"{self.stack}_pgdata"):
                log(
                    f"kept the swarm: its secrets hold the passwords of the data in "
                    f"{self.stack}_pgdata (make swarm-up brings it back; "
                    "SWARM_DOWN_VOLUMES=yes removes both)"
                )
                return
            docker("swarm", "leave", "--force")
            # Networks compose made while the swarm was up do not resolve names after the
            # leave: take the one-host stack down (its data is kept; `make up` brings it back).
            compose_down()
            log("left the swarm that swarm-up had created")


def main(argv: list[str]) -> int:
    commands = {"up": Swarm.up, "deploy": Swarm.deploy, "down": Swarm.down}
    if len(argv) != 1 or argv[0] not in commands:
        print("swarm: usage: swarm.py up | deploy | down", file=sys.stderr)
        return 2
    try:
        commands[argv[0]](Swarm(os.environ))
    except SwarmError as error:
        print(f"swarm: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

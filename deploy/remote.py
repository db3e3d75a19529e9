#!/usr/bin/env python3
"""Deploy the stack to a host over SSH: `make deploy HOST=ssh://user@host` (docs/deploying.md).

    remote.py deploy     preflight, build here, ship the images the host lacks, write a
                         release folder, then: the first time `up --wait`; later the same
                         zero-downtime rollout as `make deploy` (deploy/rollout.sh) run
                         against the host's engine, then the other services. A release that
                         fails rolls back by itself.
    remote.py rollback   return to the previous release (the same rollout, no migration)
    remote.py preflight  only the checks
    remote.py status | logs [SERVICE] | shell | down

Without a host (HOST on make's command line, or HOST= in .env) each command is the local
one: `deploy` runs deploy/rollout.sh, `status` is `compose ps -a`, and so on.

The host needs SSH, Docker Engine with the compose plugin, and a POSIX shell: nothing runs
there but `docker`, `tar`, `flock`, `df`, `cat`, `ln`. One SSH connection (a control master)
carries everything; Docker's socket is forwarded over it, so compose and rollout.sh run here
with DOCKER_HOST pointing at the host's engine, with the release's own files. No registry:
images go `docker save | gzip | ssh | docker load`, only those whose ID the host lacks and
without the layers it holds (`docker load` takes those from its store), each pinned in the
release by a tag made of its ID (an unchanged image keeps its name, so compose
recreates nothing for it). Secrets are never made here: the stack's `secrets` service
generates them on the host, into volumes; only the operator's settings travel (.env, mode
0600 on the host).

On the host (DEPLOY_DIR, default ~/flask-stack): releases/<UTC time>-<commit>/ holding
docker-compose.yml, release.yml (the pinned images), .env (settings, COMPOSE_FILE and
COMPOSE_PROJECT_NAME, so `docker compose ps` works in it) and release.json; `current` and
`previous` links; deploys.log (one audit line per deploy); deploy.lock (flock, held for the
whole deploy by one SSH channel: a crashed deploy frees it).

Settings (environment, or .env): HOST, DEPLOY_SSH_CONFIG (an ssh_config file: key, port,
known_hosts, for CI), DEPLOY_PROJECT (flask-stack), DEPLOY_DIR, DEPLOY_BUILD=no (ship the
images as built), DEPLOY_MIN_FREE_GB (5), DEPLOY_KEEP (releases kept, 5), and the stack's.
The decisions are small functions unit-tested in tests/deployment/test_remote.py.
Standard library only: the make targets run it with the system's python3.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import compose_env
import preflight

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Pinned by release.yml instead: a local image name means nothing on the host.
NOT_TRAVELLING = frozenset({"WEB_IMAGE", "DB_IMAGE", "BACKUP_IMAGE", "HOST", "ENV_FILE"})
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "PASS", "TOKEN")
# The deploy program's own settings and their defaults (.env.example; tests/test_docs.py).
DEFAULTS = {
    "HOST": "",
    "DEPLOY_SSH_CONFIG": "",
    "DEPLOY_PROJECT": "flask-stack",
    "DEPLOY_DIR": "flask-stack",
    "DEPLOY_MIN_FREE_GB": "5",
    "DEPLOY_KEEP": "5",
}
# What the operator's shell may carry to the local commands run against the host.
KEEP_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "SSH_AUTH_SOCK", "DOCKER_CONFIG")
RELEASE_FILES = ("docker-compose.yml", "release.yml", ".env")


class DeployError(Exception):
    """A failure to report in one line (and exit 1)."""


def log(message: str) -> None:
    print(f"deploy: {message}", flush=True)


# ---- decisions (pure; unit-tested) -----------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where to deploy: ssh://[user@]host[:port]."""

    host: str
    user: str = ""
    port: int | None = None

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")


def parse_host(text: str) -> Target:
    """Parse HOST: `ssh://user@host:port`, `user@host` or `host`."""
    match = re.fullmatch(
        r"(?:ssh://)?(?:([^@/:]+)@)?([^@/:]+|\[[0-9a-fA-F:]+\])(?::(\d+))?/?", text
    )
    if not match:
        raise DeployError(f"HOST={text!r}: expected ssh://user@host[:port]")
    user, host, port = match.groups()
    return Target(host.strip("[]"), user or "", int(port) if port else None)


def compose_variables(compose_text: str) -> set[str]:
    """Return the names the compose file interpolates (`${NAME...}`)."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", compose_text)) | {"COMPOSE_PROFILES"}


def travelling_settings(
    environ: Mapping[str, str], compose_text: str, env_file_keys: set[str]
) -> dict[str, str]:
    """Return the operator's settings a release carries: every non-empty variable compose
    reads or the env file sets, but not the local image names (pinned by release.yml)."""
    names = (compose_variables(compose_text) | env_file_keys) - NOT_TRAVELLING
    names = {n for n in names if not n.startswith(("DEPLOY_", "COMPOSE_FILE"))}
    return {name: environ[name] for name in sorted(names) if environ.get(name)}


def env_line(name: str, value: str) -> str:
    """Return one .env line compose reads back as exactly `value`."""
    if re.fullmatch(r"[A-Za-z0-9_./:,@+=%-]*", value):
        return f"{name}={value}"
    if "'" not in value and "\n" not in value:
        return f"{name}='{value}'"  # single quotes: literal, no interpolation
    raise DeployError(f"{name}: a value holding both a quote and a line break cannot travel")


def render_env(settings: Mapping[str, str], project: str) -> str:
    """Return the release's .env: compose's own settings, then the operator's."""
    lines = [
        "# Written by `make deploy HOST=...` (deploy/remote.py): the settings of this release.",
        f"COMPOSE_PROJECT_NAME={project}",
        "COMPOSE_FILE=docker-compose.yml:release.yml",
        *(env_line(name, value) for name, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def is_secret_name(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS)


def settings_diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Return one line per setting added, changed or removed (secret values masked)."""

    def show(name: str, value: str) -> str:
        return "(hidden)" if is_secret_name(name) else repr(value)

    lines = []
    for name in sorted(old.keys() | new.keys()):
        if name.startswith("COMPOSE_") and name != "COMPOSE_PROFILES":
            continue
        if name not in old:
            lines.append(f"+ {name}={show(name, new[name])}")
        elif name not in new:
            lines.append(f"- {name} (was {show(name, old[name])})")
        elif old[name] != new[name]:
            lines.append(f"~ {name}: {show(name, old[name])} -> {show(name, new[name])}")
    return lines


def pinned_images(
    services: Mapping[str, Mapping[str, Any]], project: str, ids: Mapping[str, str]
) -> dict[str, str]:
    """Return, per service, the image reference the host runs: a built image (or one that
    shares a built image's name) gets a tag made of its ID, so an unchanged image keeps
    its reference; any other image (redis:8) keeps its own name."""
    names = {service: image_name(project, service, spec) for service, spec in services.items()}
    built = {names[s] for s, spec in services.items() if "build" in spec}
    pins = {}
    for service, name in names.items():
        if name in built:
            repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
            pins[service] = f"{repo}:{short_id(ids[name])}"
        else:
            pins[service] = name
    return pins


def image_name(project: str, service: str, spec: Mapping[str, Any]) -> str:
    """Return the image compose uses for a service (`<project>-<service>` when unnamed)."""
    return str(spec.get("image") or f"{project}-{service}")


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def images_to_ship(wanted: Mapping[str, str], host_has: set[str]) -> list[str]:
    """Return the references (ref -> image ID) whose image the host does not hold."""
    return sorted(ref for ref, image_id in wanted.items() if image_id not in host_has)


def override_yaml(pins: Mapping[str, str]) -> str:
    """Return release.yml: every service's image, pinned."""
    lines = [
        "# Written by deploy/remote.py: the images of this release, tagged by ID.",
        "services:",
    ]
    for service, ref in sorted(pins.items()):
        lines += [f"  {service}:", f"    image: {json.dumps(ref)}"]
    return "\n".join(lines) + "\n"


def release_digest(files: Mapping[str, str]) -> str:
    """Return a digest of what a release runs (its compose files and settings)."""
    digest = hashlib.sha256()
    for name in RELEASE_FILES:
        digest.update(name.encode() + b"\0" + files.get(name, "").encode() + b"\0")
    return digest.hexdigest()[:16]


def release_name(now: datetime, commit: str) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{commit}"


def releases_to_remove(names: list[str], keep: int, protected: set[str]) -> list[str]:
    """Return the oldest release folders beyond the newest `keep` (never a protected one)."""
    ordered = sorted(names)
    return [n for n in ordered[: max(0, len(ordered) - keep)] if n not in protected]


def audit_line(when: datetime, who: str, commit: str, release: str, result: str) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%SZ} who={who} commit={commit} release={release} result={result}"


def parse_ps(text: str) -> list[dict[str, Any]]:
    """Return `docker compose ps --format json` as a list (one object per line, or an array)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def running_services(ps: list[dict[str, Any]]) -> dict[str, int]:
    """Return how many containers of each service are running."""
    counts: dict[str, int] = {}
    for container in ps:
        if container.get("State") == "running":
            counts[container["Service"]] = counts.get(container["Service"], 0) + 1
    return counts


def layer_chains(images: Iterator[list[str]] | list[list[str]]) -> set[tuple[str, ...]]:
    """Return every prefix of the images' layer lists (diff IDs): a layer is reusable only
    on top of the same layers below it."""
    return {tuple(layers[: i + 1]) for layers in images for i in range(len(layers))}


def layers_to_skip(
    manifest: list[tuple[list[str], list[str]]], host: set[tuple[str, ...]]
) -> set[str]:
    """Return the layer files of a `docker save` archive that the host already holds.

    `manifest` pairs each image's layer paths with its diff IDs (same order). A path shared
    by several images is left out only if none of them needs it."""
    skip: set[str] = set()
    need: set[str] = set()
    for paths, diff_ids in manifest:
        for i, path in enumerate(paths):
            (skip if tuple(diff_ids[: i + 1]) in host else need).add(path)
    return skip - need


def read_manifest(archive: tarfile.TarFile) -> list[tuple[list[str], list[str]]]:
    """Return (layer paths, diff IDs) per image of a `docker save` archive."""

    def read(name: str) -> Any:
        handle = archive.extractfile(name)
        assert handle, name
        return json.load(handle)

    return [
        (entry["Layers"], read(entry["Config"])["rootfs"]["diff_ids"])
        for entry in read("manifest.json")
    ]


class GzipSink(io.RawIOBase):
    """A writable stream that gzips what it is given into `out`, counting the bytes sent."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.gzip = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing, fastest level
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        packed = self.gzip.compress(bytes(data))
        self.written += len(packed)
        self.out.write(packed)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            tail = self.gzip.flush()
            self.written += len(tail)
            self.out.write(tail)
            self.out.close()
        super().close()


# ---- talking to the host ---------------------------------------------------------------
class Connection:
    """One SSH control master to the host; commands and Docker's socket go through it."""

    def __init__(self, target: Target, config: str, workdir: Path) -> None:
        self.target = target
        self.workdir = workdir
        self.control = workdir / "ssh"
        base = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
        base += ["-o", "ServerAliveInterval=15"]
        if config:
            base += ["-F", config]
        if target.port:
            base += ["-p", str(target.port)]
        self.base = base
        self.master: subprocess.Popen[bytes] | None = None
        self.docker_host = ""

    def ssh(self, *args: str) -> list[str]:
        return [*self.base, "-S", str(self.control), *args, self.target.destination]

    def open(self) -> None:
        """Connect, or raise DeployError with ssh's own reason."""
        errors = self.workdir / "ssh-master.err"
        with errors.open("wb") as err:
            self.master = subprocess.Popen(
                self.ssh("-M", "-N", "-o", "ControlPersist=no"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.master.poll() is not None:
                raise DeployError(preflight.last_line(errors.read_text(errors="replace")))
            check = subprocess.run(self.ssh("-O", "check"), capture_output=True, check=False)
            if check.returncode == 0:
                return
            time.sleep(0.2)
        raise DeployError("no answer within 30 s")

    def run(self, command: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        """Run a shell command on the host; return (status, stdout, stderr)."""
        proc = subprocess.run(
            [*self.ssh(), "--", command], input=stdin, capture_output=True, check=False
        )
        return (
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    def must(self, command: str, stdin: bytes | None = None) -> str:
        status, out, err = self.run(command, stdin)
        if status != 0:
            raise DeployError(f"on the host, `{command}` failed: {preflight.last_line(err)}")
        return out

    def popen(self, command: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*self.ssh(), "--", command], **kwargs)

    def forward_docker(self) -> str:
        """Forward the host's Docker socket to a local one; return its DOCKER_HOST."""
        if self.docker_host:
            return self.docker_host
        _, out, _ = self.run("docker context inspect --format '{{.Endpoints.docker.Host}}'")
        remote = out.strip().removeprefix("unix://") or "/var/run/docker.sock"
        local = self.workdir / "docker.sock"
        forward = subprocess.run(
            self.ssh("-O", "forward", "-L", f"{local}:{remote}"), capture_output=True, check=False
        )
        if forward.returncode != 0:
            raise DeployError(f"cannot forward Docker's socket: {forward.stderr.decode().strip()}")
        self.docker_host = f"unix://{local}"
        return self.docker_host

    def close(self) -> None:
        if self.master and self.master.poll() is None:
            subprocess.run(self.ssh("-O", "exit"), capture_output=True, check=False)
            try:
                self.master.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.master.kill()


# ---- the deploy -----------------------------------------------------------------------
@dataclass
class Deploy:
    """One run against one host: settings, the connection, local helpers."""

    target: Target
    environ: dict[str, str]
    env_file_keys: set[str]
    conn: Connection
    project: str = "flask-stack"
    base: str = "flask-stack"
    shipped_bytes: int = 0
    skipped: list[str] = field(default_factory=list)

    # -- local commands ------------------------------------------------------------------
    def local_compose(self) -> list[str]:
        cmd = ["docker", "compose", "-p", self.project]
        if self.environ.get("ENV_FILE"):
            cmd += ["--env-file", str(ROOT / self.environ["ENV_FILE"])]
        return [*cmd, "-f", str(COMPOSE_FILE)]

    def local(self, *args: str) -> str:
        """Run a command on this machine's engine with the operator's settings."""
        proc = subprocess.run(
            args, cwd=ROOT, env=self.environ, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise DeployError(f"`{' '.join(args[:4])}` failed: {preflight.last_line(proc.stderr)}")
        return proc.stdout

    def remote_env(self) -> dict[str, str]:
        """The environment of compose and rollout.sh run against the host: only the release's
        .env sets the stack's variables (a shell's own HTTPS_PORT must not win here)."""
        env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
        return {**env, "DOCKER_HOST": self.conn.forward_docker()}

    def host_compose(self, folder: Path) -> list[str]:
        return [
            "docker", "compose", "-p", self.project, "--project-directory", str(folder),
            "--env-file", str(folder / ".env"),
            "-f", str(folder / "docker-compose.yml"), "-f", str(folder / "release.yml"),
        ]  # fmt: skip

    def on_host(
        self, folder: Path, *args: str, capture: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker compose` with a release's files against the host's engine."""
        return subprocess.run(
            [*self.host_compose(folder), *args],
            env=self.remote_env(),
            capture_output=capture,
            text=True,
            check=False,
        )

    # -- preflight ------------------------------------------------------------------------
    def preflight(self, settings: Mapping[str, str]) -> None:
        checks = [preflight.Check("ssh", True, f"{self.target} answers")]
        user = self.conn.must("id -un").strip()
        checks += preflight.check_docker(self.conn.run, user)
        if all(c.ok for c in checks):
            needed = float(self.environ.get("DEPLOY_MIN_FREE_GB") or DEFAULTS["DEPLOY_MIN_FREE_GB"])
            checks.append(preflight.check_disk(self.conn.run, needed))
            ports = [int(settings.get("HTTP_PORT", 80)), int(settings.get("HTTPS_PORT", 443))]
            checks += preflight.check_ports(self.conn.run, self.project, ports)
        status, out, _ = self.conn.run("date -u +%s")
        checks.append(preflight.check_clock(out if status == 0 else "", time.time()))
        dns = preflight.check_dns(settings.get("SERVER_NAME", ""), self.target.host)
        if dns:
            checks.append(dns)
        if settings.get("TLS_DIR") and not settings["TLS_DIR"].startswith("/"):
            checks.append(
                preflight.Check(
                    "TLS_DIR", False, f"{settings['TLS_DIR']} is relative",
                    "name an absolute folder on the host holding tls.crt and tls.key "
                    "(or leave it empty: ACME or the self-signed certificate)",
                )
            )  # fmt: skip
        for check in checks:
            print(check.line(), flush=True)
        if not all(c.ok for c in checks):
            raise DeployError("preflight failed: nothing was changed on the host")

    # -- the lock and the audit -----------------------------------------------------------
    @contextmanager
    def lock(self, owner: str) -> Iterator[None]:
        """Hold the host's deploy lock for the block, or refuse naming its holder."""
        lock, holder = f"{self.base}/deploy.lock", f"{self.base}/deploy.lock.owner"
        script = f'printf "%s\\n" "$0" > {holder}; echo locked; cat; rm -f {holder}'
        command = (
            f"mkdir -p {self.base}/releases && exec flock -n {lock} sh -c {shlex.quote(script)} "
            f"{shlex.quote(owner)}"
        )
        proc = self.conn.popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout and proc.stdin
        if proc.stdout.readline().strip() != b"locked":
            proc.wait()
            _, held_by, _ = self.conn.run(f"cat {holder}")
            raise DeployError(
                f"{self.target} is being deployed by {held_by.strip() or 'another deploy'}: "
                "refused (try again once it is done)"
            )
        log(f"holding the host's deploy lock ({self.base}/deploy.lock)")
        try:
            yield
        finally:
            proc.stdin.close()
            proc.wait(timeout=30)

    def audit(self, line: str) -> None:
        self.conn.run(f"cat >> {self.base}/deploys.log", (line + "\n").encode())

    # -- images ---------------------------------------------------------------------------
    def build(self) -> None:
        if self.environ.get("DEPLOY_BUILD", "yes") == "no":
            log("DEPLOY_BUILD=no: shipping the images as they are built")
            return
        log("building the images here")
        proc = subprocess.run(
            [*self.local_compose(), "build"], cwd=ROOT, env=self.environ, check=False
        )
        if proc.returncode != 0:
            raise DeployError("the build failed: nothing was changed on the host")

    def images(self) -> tuple[dict[str, str], dict[str, str]]:
        """Return the pins (service -> reference) and the images (reference -> ID)."""
        config = json.loads(self.local(*self.local_compose(), "config", "--format", "json"))
        services = config["services"]
        names = {s: image_name(self.project, s, spec) for s, spec in services.items()}
        ids = {}
        for name in set(names.values()):
            found = subprocess.run(
                ["docker", "image", "inspect", "--format", "{{.Id}}", name],
                env=self.environ, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if found.returncode != 0:
                raise DeployError(f"image {name} is not here: build it (or drop DEPLOY_BUILD=no)")
            ids[name] = found.stdout.strip()
        pins = pinned_images(services, self.project, ids)
        return pins, {pins[s]: ids[names[s]] for s in services}

    def ship(self, wanted: Mapping[str, str]) -> None:
        """Send the images the host lacks (by ID), gzip-compressed over the SSH connection."""
        env = self.remote_env()
        host_has = set()
        for image_id in set(wanted.values()):
            found = subprocess.run(
                ["docker", "image", "inspect", image_id],
                env=env, capture_output=True, check=False,
            )  # fmt: skip
            if found.returncode == 0:
                host_has.add(image_id)
        missing = images_to_ship(wanted, host_has)
        self.skipped = sorted(set(wanted) - set(missing))
        for ref in missing:
            self.local("docker", "tag", wanted[ref], ref)
        if missing:
            log(f"shipping {len(missing)} image(s) the host lacks: {', '.join(missing)}")
            self.stream(missing)
        if self.skipped:
            log(f"{len(self.skipped)} image(s) already on the host: {', '.join(self.skipped)}")
        for ref in self.skipped:  # same ID under another name there: name it
            subprocess.run(
                ["docker", "tag", wanted[ref], ref],
                env=env, capture_output=True, check=True,
            )  # fmt: skip

    def host_layers(self) -> set[tuple[str, ...]]:
        """Return every layer chain the host's engine holds (each image's layer prefixes)."""
        env = self.remote_env()
        ids = subprocess.run(
            ["docker", "image", "ls", "-q", "--no-trunc"],
            env=env, capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        if not ids:
            return set()
        found = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", *set(ids)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return layer_chains(json.loads(line) for line in found.stdout.splitlines() if line)

    def stream(self, refs: list[str]) -> None:
        """`docker save` the images here, then send them without the layers the host holds
        (`docker load` takes a layer it has from its own store) through gzip and SSH."""
        started = time.monotonic()
        host_layers = self.host_layers()
        load = self.conn.popen(
            "gunzip | docker load", stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert load.stdin
        sink = GzipSink(load.stdin)
        skip: set[str] = set()
        if not host_layers:  # a fresh host: nothing to leave out, no copy on disk
            with subprocess.Popen(
                ["docker", "save", *refs], env=self.environ, stdout=subprocess.PIPE
            ) as save:
                assert save.stdout
                raw = 0
                while chunk := save.stdout.read(1 << 20):
                    raw += len(chunk)
                    sink.write(chunk)
            if save.returncode != 0:
                raise DeployError("docker save failed")
        else:  # the archive's manifest says which files are which layers: save it first
            saved = self.conn.workdir / "images.tar"
            self.local("docker", "save", "-o", str(saved), *refs)
            raw = saved.stat().st_size
            with tarfile.open(saved) as source, tarfile.open(fileobj=sink, mode="w|") as out:
                skip = layers_to_skip(read_manifest(source), host_layers)
                for member in source:
                    if member.name not in skip:
                        out.addfile(member, source.extractfile(member) if member.isfile() else None)
            saved.unlink()
        sink.close()
        self.shipped_bytes += sink.written
        loaded = load.stdout.read().decode() if load.stdout else ""
        if load.wait() != 0:
            raise DeployError(f"shipping the images failed: {preflight.last_line(loaded)}")
        mb = 1024 * 1024
        log(
            f"shipped {raw / mb:.0f} MB of images as {sink.written / mb:.1f} MB "
            f"({len(skip)} layer(s) the host holds left out, gzip) "
            f"in {time.monotonic() - started:.0f} s"
        )

    # -- releases -------------------------------------------------------------------------
    def current(self, link: str = "current") -> tuple[str, dict[str, str]] | None:
        """Return the name and files of the host's current (or previous) release."""
        status, name, _ = self.conn.run(f"readlink {self.base}/{link}")
        if status != 0 or not name.strip():
            return None
        proc = subprocess.run(
            [*self.conn.ssh(), "--", f"tar -cf - -C {self.base}/{link}/ ."],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise DeployError(f"cannot read the host's {link} release")
        files = {}
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle:
                    files[member.name.removeprefix("./")] = handle.read().decode()
        return Path(name.strip()).name, files

    def materialise(self, files: Mapping[str, str], into: Path) -> Path:
        """Write a release's files into a local folder compose reads."""
        into.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = into / name
            path.write_text(text)
            path.chmod(0o600)
        return into

    def upload(self, name: str, files: Mapping[str, str]) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for filename, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(filename)
                info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        folder = f"{self.base}/releases/{name}"
        self.conn.must(
            f"umask 077 && mkdir -p {folder} && tar -xf - -C {folder}", buffer.getvalue()
        )

    def point(self, link: str, name: str) -> None:
        self.conn.must(f"ln -sfn releases/{name} {self.base}/{link}")

    def prune(self, protected: set[str]) -> None:
        _, out, _ = self.conn.run(f"ls -1 {self.base}/releases")
        keep = int(self.environ.get("DEPLOY_KEEP") or DEFAULTS["DEPLOY_KEEP"])
        old = releases_to_remove(out.split(), keep, protected)
        if old:
            self.conn.run(" ".join(["cd", f"{self.base}/releases", "&&", "rm", "-rf", *old]))

    # -- bringing a release up ------------------------------------------------------------
    def running(self, folder: Path) -> dict[str, int]:
        proc = self.on_host(folder, "ps", "--format", "json")
        return running_services(parse_ps(proc.stdout)) if proc.returncode == 0 else {}

    def up(self, folder: Path) -> bool:
        """`up --wait` the whole release, keeping the number of web replicas."""
        replicas = max(1, self.running(folder).get("web", 0))
        args = ["up", "-d", "--no-build", "--wait", "--wait-timeout", "600"]
        proc = self.on_host(folder, *args, "--scale", f"web={replicas}", capture=False)
        return proc.returncode == 0

    def rollout(self, folder: Path, migrate: bool) -> bool:
        """deploy/rollout.sh, as `make deploy` runs it, against the host's engine."""
        env = {
            **self.remote_env(),
            "COMPOSE": " ".join(self.host_compose(folder)),
            "DEPLOY_BUILD": "no",
            "DEPLOY_MIGRATE": "yes" if migrate else "no",
        }
        for name in ("DEPLOY_READY_TIMEOUT", "DEPLOY_SETTLE"):
            if self.environ.get(name):
                env[name] = self.environ[name]
        return subprocess.run([str(HERE / "rollout.sh")], env=env, check=False).returncode == 0

    def replace(self, folder: Path, migrate: bool) -> bool:
        """Roll web over to the release without downtime, then bring the rest to it."""
        return self.rollout(folder, migrate) and self.up(folder)


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def commit() -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )

    found = git("rev-parse", "--short=12", "HEAD")
    if found.returncode != 0:
        return "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return found.stdout.strip() + ("-dirty" if dirty else "")


def new_release(d: Deploy, pins: Mapping[str, str], images: Mapping[str, str]) -> dict[str, str]:
    compose_text = COMPOSE_FILE.read_text()
    settings = travelling_settings(d.environ, compose_text, d.env_file_keys)
    files = {
        "docker-compose.yml": compose_text,
        "release.yml": override_yaml(pins),
        ".env": render_env(settings, d.project),
    }
    meta = {
        "digest": release_digest(files),
        "commit": commit(),
        "by": who(),
        "images": {ref: images[ref] for ref in sorted(images)},
    }
    files["release.json"] = json.dumps(meta, indent=2) + "\n"
    return files


def release_settings(files: Mapping[str, str]) -> dict[str, str]:
    return compose_env.parse_env_file(files.get(".env", ""), lambda _: None)


def deploy(d: Deploy, scratch: Path) -> None:
    """Preflight, build, ship, release; first `up`, later the rollout; roll back on failure."""
    started = time.monotonic()
    settings = travelling_settings(d.environ, COMPOSE_FILE.read_text(), d.env_file_keys)
    d.preflight(settings)
    version = commit()
    with d.lock(f"{who()} (commit {version}, since {datetime.now(UTC):%H:%M:%S}Z)"):
        d.build()
        pins, images = d.images()
        files = new_release(d, pins, images)
        digest = json.loads(files["release.json"])["digest"]
        current = d.current()
        name = release_name(datetime.now(UTC), version)
        if current:
            old_name, old_files = current
            old_folder = d.materialise(old_files, scratch / "current")
            old_digest = json.loads(old_files.get("release.json", "{}")).get("digest")
            if old_digest == digest:
                if d.running(old_folder).get("nginx"):
                    log(f"nothing to change: {d.target} already runs release {old_name} "
                        "(same images and settings)")  # fmt: skip
                    d.audit(audit_line(datetime.now(UTC), who(), version, old_name, "unchanged"))
                    return
                log(f"release {old_name} is current but not running: starting it")
                d.ship(images)
                ok = d.up(old_folder)
                d.audit(audit_line(datetime.now(UTC), who(), version, old_name,
                                   "started" if ok else "failed"))  # fmt: skip
                if not ok:
                    raise DeployError(f"release {old_name} did not become healthy")
                return
            diff = settings_diff(release_settings(old_files), release_settings(files))
            log(f"settings: {'unchanged' if not diff else 'changes against ' + old_name}")
        else:
            diff = settings_diff({}, release_settings(files))
            log("first deploy to this host; settings:" if diff else "first deploy; no settings")
        for line in diff:
            print(f"  {line}", flush=True)
        shipping = time.monotonic()
        d.ship(images)
        shipped_in = time.monotonic() - shipping
        d.upload(name, files)
        folder = d.materialise(files, scratch / name)
        if not current:
            log(f"starting release {name} (the whole stack; waiting until healthy)")
            ok = d.up(folder)
            result = "ok (first deploy)" if ok else "failed (first deploy)"
        else:
            log(f"release {name}: migrate, then replace the web replicas one by one")
            ok = d.replace(folder, migrate=True)
            result = "ok"
            if not ok:
                log(f"release {name} failed: rolling back to {current[0]}")
                back = d.replace(old_folder, migrate=False)
                result = (
                    f"failed, rolled back to {current[0]}" if back else "failed, rollback failed"
                )
                d.conn.run(f"rm -rf {d.base}/releases/{name}")
        took = f"{time.monotonic() - started:.0f} s, {shipped_in:.0f} s of it shipping"
        shipped = f"shipped {d.shipped_bytes} bytes, {len(d.skipped)} image(s) skipped"
        d.audit(audit_line(datetime.now(UTC), who(), version, name, f"{result}; {shipped}; {took}"))
        if not ok:
            raise DeployError(f"release {name}: {result}")
        if current:
            d.point("previous", current[0])
        d.point("current", name)
        d.prune({name, current[0] if current else ""})
        log(f"done: {d.target} runs release {name} ({shipped}; {took})")


def rollback(d: Deploy, scratch: Path) -> None:
    """Return to the previous release: the same rollout, without migrations."""
    with d.lock(f"{who()} (rollback, since {datetime.now(UTC):%H:%M:%S}Z)"):
        current, previous = d.current(), d.current("previous")
        if not current or not previous:
            raise DeployError(f"{d.target} has no previous release to return to")
        log(f"rolling back from {current[0]} to {previous[0]}")
        folder = d.materialise(previous[1], scratch / previous[0])
        ok = d.replace(folder, migrate=False)
        line = audit_line(datetime.now(UTC), who(), commit(), previous[0],
                          "rollback ok" if ok else "rollback failed")  # fmt: skip
        d.audit(line)
        if not ok:
            raise DeployError(f"the rollback to {previous[0]} failed")
        d.point("current", previous[0])
        d.point("previous", current[0])
        log(f"done: {d.target} runs release {previous[0]} again")


def with_current(d: Deploy, scratch: Path) -> Path:
    found = d.current()
    if not found:
        raise DeployError(f"nothing deployed on {d.target} yet: make deploy HOST=...")
    return d.materialise(found[1], scratch / found[0])


def status(d: Deploy, scratch: Path) -> None:
    folder = with_current(d, scratch)
    meta = json.loads((folder / "release.json").read_text())
    previous = d.current("previous")
    print(f"host: {d.target}\nrelease: {folder.name} (commit {meta.get('commit')})")
    print(f"previous: {previous[0] if previous else '-'}")
    d.on_host(folder, "ps", "-a", capture=False)
    print("last deploys:")
    _, out, _ = d.conn.run(f"tail -n 5 {d.base}/deploys.log")
    print(out, end="", flush=True)


# ---- entry point ----------------------------------------------------------------------
def local_fallback(command: str, args: list[str]) -> None:
    """Without a host: the command's local meaning."""
    compose = shlex.split(os.environ.get("COMPOSE") or "docker compose")
    local = {
        "deploy": [str(HERE / "rollout.sh")],
        "status": [*compose, "ps", "-a"],
        "logs": [*compose, "logs", "-f", "--tail=100", *args],
        "shell": [*compose, "exec", "web", "flask", "shell"],
        "down": [*compose, "down"],
    }
    if command not in local:
        sys.exit(f"deploy: `{command}` needs a host: HOST=ssh://user@host (or HOST= in .env)")
    os.execvp(local[command][0], local[command])  # noqa: S606 - our own command


def main(argv: list[str]) -> int:
    commands = ("deploy", "rollback", "preflight", "status", "logs", "shell", "down")
    if not argv or argv[0] not in commands:
        print(f"usage: remote.py {{{'|'.join(commands)}}} [SERVICE]", file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        environ = compose_env.environment()
        named = environ.get("ENV_FILE", "")
        env_path = ROOT / (named or ".env")
        file_values = (
            compose_env.parse_env_file(env_path.read_text(), os.environ.get)
            if env_path.is_file()
            else {}
        )
    except (ValueError, OSError) as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    # HOST from make's command line (DEPLOY_HOST), else from the env file; never a shell's
    # own $HOST (zsh sets it to this machine's name).
    host = os.environ.get("DEPLOY_HOST") or file_values.get("HOST", "")
    if not host:
        local_fallback(command, args)
    try:
        target = parse_host(host)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="deploy-") as tmp:
        scratch = Path(tmp)
        conn = Connection(target, environ.get("DEPLOY_SSH_CONFIG", ""), scratch)
        d = Deploy(
            target,
            environ,
            set(file_values),
            conn,
            project=environ.get("DEPLOY_PROJECT") or DEFAULTS["DEPLOY_PROJECT"],
            base=environ.get("DEPLOY_DIR") or DEFAULTS["DEPLOY_DIR"],
        )
        try:
            try:
                conn.open()
            except DeployError as error:
                print(preflight.Check("ssh", False, f"cannot reach {target}: {error}",
                      "check HOST, that your key is in the host's ~/.ssh/authorized_keys "
                      "(ssh-copy-id), and DEPLOY_SSH_CONFIG").line(), flush=True)  # fmt: skip
                return 1
            if command == "deploy":
                deploy(d, scratch)
            elif command == "rollback":
                rollback(d, scratch)
            elif command == "preflight":
                settings = travelling_settings(environ, COMPOSE_FILE.read_text(), set(file_values))
                d.preflight(settings)
            elif command == "status":
                status(d, scratch)
            else:
                folder = with_current(d, scratch)
                extra = {
                    "logs": ["logs", "-f", "--tail=100", *args],
                    "shell": ["exec", "web", "flask", "shell"],
                    "down": ["down"],
                }[command]
                return d.on_host(folder, *extra, capture=False).returncode
        except DeployError as error:
            print(f"deploy: {error}", file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            return 130
        finally:
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The Swarm stack file and docker-compose.yml describe the same system: they must not drift.

deploy/swarm/stack.yml is generated from docker-compose.yml and deploy/targets.yml
(tests/deployment/test_generate.py checks it is fresh); these tests check what the result must hold
whatever the generator or the overlay says.

Compared: the services (compose services without a `profiles:` entry, minus the documented
exceptions below), their images, environment keys and healthchecks. Also checked without
Docker: every *_FILE setting names a secret the service mounts, and no service uses a key
`docker stack deploy` ignores. (That deploy prints no "Ignoring unsupported options" and that
`docker stack config` keeps every key is checked against the real CLI in tests/swarm.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "deploy/swarm/stack.yml"
DB_DOCKERFILE = ROOT / "backup/Dockerfile"

# Services in one file only, on purpose:
ONLY_IN_COMPOSE = {
    # Generates secrets into volumes; on Swarm they are Swarm secrets made by
    # `make swarm-secrets` (deploy/swarm/manage_secrets.py).
    "secrets",
    # ACME certificates (docs/certificates.md): certbot shares a webroot and the certificate
    # volume with nginx on one host. Not ported to Swarm yet: there nginx serves the
    # self-signed certificate or one mounted from TLS_DIR (docs/deploy-swarm.md).
    "acme",
    # pgBackRest's repository and its agent beside PostgreSQL (backup/, docs/operations.md):
    # not ported to Swarm yet; there db runs plain PostgreSQL without WAL archiving.
    "backup",
    "db-agent",
}
ONLY_IN_STACK = {
    # Between web and PostgreSQL at N replicas (the connection budget, docs/deploy-swarm.md).
    "pgbouncer",
}
# Environment keys only the stack sets: web reaches PgBouncer on its own port.
STACK_ONLY_ENV = {"web": {"POSTGRES_PORT"}}
# Environment keys only compose sets: the metrics exporter's role (monitoring profile,
# docs/monitoring.md), which the stack does not run yet.
COMPOSE_ONLY_ENV = {
    "migrate": {"POSTGRES_MONITOR_USER", "POSTGRES_MONITOR_PASSWORD_FILE"},
    # db's pgBackRest settings (archive-push to `backup`), which the stack has not.
    "db": {
        key for key in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-pgbackrest-db"]
    },
}
# Images that differ on purpose: compose's db adds pgBackRest to postgres:17 (backup/
# Dockerfile); Swarm runs that base, unarchived, until the backup services are ported.
STACK_IMAGE = {"db": "postgres:17"}
# Healthcheck timing only the stack sets: Swarm has no `depends_on: condition`, so nginx
# starts with web and needs a start period while the web tasks boot.
STACK_ONLY_HEALTHCHECK_KEYS = {"nginx": {"start_period"}}
# Swarm mounts secrets flat under /run/secrets/; compose mounts per-service volumes.
SECRET_PATHS = {
    "/run/secrets/redis/probe_password": "/run/secrets/redis_probe_password",
}
# Keys `docker stack deploy` ignores ("Ignoring unsupported options"): docker/cli's
# cli/compose/types UnsupportedProperties. They would be silently missing on Swarm.
SWARM_IGNORES = {
    "build", "cgroup_parent", "devices", "domainname", "external_links", "ipc", "links",
    "mac_address", "network_mode", "pid", "privileged", "restart", "security_opt",
    "shm_size", "sysctls", "userns_mode", "tmpfs", "container_name", "expose",
}  # fmt: skip


def load(path: Path) -> dict[str, Any]:
    """Parse a compose-format file (anchors and `<<` merges resolved; no interpolation)."""
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    services = load(ROOT / "docker-compose.yml")["services"]
    # Optional parts (monitoring, ...) are opt-in profiles, not part of the core stack.
    return {name: svc for name, svc in services.items() if not svc.get("profiles")}


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return load(STACK_FILE)["services"]


def common(compose: dict[str, Any], stack: dict[str, Any]) -> list[str]:
    return sorted(set(compose) & set(stack))


def test_the_same_services_except_the_documented_ones(compose, stack):
    assert set(compose) - ONLY_IN_COMPOSE == set(stack) - ONLY_IN_STACK
    assert set(compose) >= ONLY_IN_COMPOSE
    assert set(stack) >= ONLY_IN_STACK


def test_the_same_images(compose, stack):
    for name in common(compose, stack):
        if name in STACK_IMAGE:
            assert stack[name]["image"] == STACK_IMAGE[name], name
            assert f"FROM {STACK_IMAGE[name]} AS {name}" in DB_DOCKERFILE.read_text()
        elif "image" in compose[name] and "build" not in compose[name]:
            assert stack[name]["image"] == compose[name]["image"], name
        else:  # built by compose under its project name: the stack names the local build
            variable = f"{name.upper()}_IMAGE"
            assert stack[name]["image"] == f"${{{variable}:-flask-stack-{name}:latest}}", name


def test_the_same_environment_keys(compose, stack):
    for name in common(compose, stack):
        compose_keys = set(compose[name].get("environment", {}))
        compose_keys -= COMPOSE_ONLY_ENV.get(name, set())
        stack_keys = set(stack[name].get("environment", {})) - STACK_ONLY_ENV.get(name, set())
        assert stack_keys == compose_keys, name


def test_the_same_healthchecks(compose, stack):
    for name in common(compose, stack):
        expected = compose[name].get("healthcheck")
        got = dict(stack[name].get("healthcheck") or {})
        for key in STACK_ONLY_HEALTHCHECK_KEYS.get(name, set()):
            got.pop(key)
        if expected and "test" in got:
            test = got["test"]
            for old, new in SECRET_PATHS.items():
                test = [part.replace(new, old) for part in test]
            got["test"] = test
        assert (got or None) == expected, name


def test_every_file_setting_names_a_secret_the_service_mounts(stack):
    for name, svc in stack.items():
        mounted = {
            f"/run/secrets/{s['target'] if 'target' in s else s['source']}"
            for s in (x if isinstance(x, dict) else {"source": x} for x in svc.get("secrets", []))
        }
        for key, value in (svc.get("environment") or {}).items():
            if key.endswith("_FILE") and key != "DRAIN_FILE":  # DRAIN_FILE is a flag in /tmp
                assert value in mounted, f"{name}: {key}={value} is not a mounted secret"
        for pair in str((svc.get("environment") or {}).get("PGBOUNCER_USERS", "")).split():
            assert pair.split("=", 1)[1] in mounted, f"{name}: PGBOUNCER_USERS {pair}"


def test_no_service_uses_a_key_swarm_ignores(stack):
    for name, svc in stack.items():
        assert not set(svc) & SWARM_IGNORES, f"{name}: {set(svc) & SWARM_IGNORES}"


def test_depends_on_is_a_list_and_one_shots_do_not_loop(stack):
    for name, svc in stack.items():
        assert isinstance(svc.get("depends_on", []), list), name
        policy = svc["deploy"]["restart_policy"]
        if name == "migrate":
            assert policy["condition"] == "on-failure" and policy["max_attempts"] > 0
        else:
            assert policy["condition"] == "any", name


def test_web_updates_start_first_and_roll_back_on_failure(stack):
    update = stack["web"]["deploy"]["update_config"]
    assert update["order"] == "start-first"
    assert update["failure_action"] == "rollback"
    assert re.fullmatch(r"\d+s", update["monitor"])
    assert stack["web"]["deploy"]["rollback_config"]


def test_internal_services_use_dns_round_robin_and_nginx_publishes_in_host_mode(stack):
    for name in ("web", "pgbouncer", "db", "redis"):
        assert stack[name]["deploy"]["endpoint_mode"] == "dnsrr", name
    assert {p["mode"] for p in stack["nginx"]["ports"]} == {"host"}


def test_postgres_and_redis_are_pinned_single_instances(stack):
    for name in ("db", "redis"):
        deploy = stack[name]["deploy"]
        assert deploy["replicas"] == 1, name
        assert deploy["placement"]["constraints"] == ["node.labels.flask-stack.data == true"]


def test_secrets_are_external_and_versioned():
    secrets = load(STACK_FILE)["secrets"]
    for name, spec in secrets.items():
        assert spec["external"] is True, name
        assert re.fullmatch(
            rf"\$\{{STACK_NAME:-flask-stack\}}_{name}_v\$\{{[A-Z_]+:-1\}}", spec["name"]
        )


def default(value: object) -> int:
    """Return the default of a `${NAME:-default}` setting (or the plain number)."""
    match = re.fullmatch(r"\$\{[A-Z_]+:-(\d+)\}", str(value))
    return int(match[1] if match else str(value))


def test_the_default_connection_budget_holds_at_4_replicas(stack):
    """replicas x workers x (pool + overflow) <= max_client_conn; server side <= PostgreSQL."""
    web, pgbouncer = stack["web"]["environment"], stack["pgbouncer"]["environment"]
    per_worker = default(web["DB_POOL_SIZE"]) + default(web["DB_MAX_OVERFLOW"])
    assert per_worker <= default(web["GUNICORN_THREADS"])  # a worker uses one per thread
    clients = 4 * default(web["WEB_CONCURRENCY"]) * per_worker
    assert clients <= default(pgbouncer["PGBOUNCER_MAX_CLIENT_CONN"])
    postgres_max_connections, reserve = 100, 10  # PostgreSQL's default; superusers, migrate, ops
    servers = default(pgbouncer["PGBOUNCER_MAX_DB_CONNECTIONS"])
    assert default(pgbouncer["PGBOUNCER_DEFAULT_POOL_SIZE"]) <= servers
    assert servers <= postgres_max_connections - reserve

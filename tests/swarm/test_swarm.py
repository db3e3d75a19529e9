"""The stack on a real single-node Docker Swarm: deployed, served, updated, rolled back, scaled.

One stack for the module (conftest.py), in order: what `docker stack deploy` did with the
file, the core user journey through nginx across 3 web replicas, a rolling update under
signed-in traffic, a broken image that Swarm rolls back by itself, and 4 replicas under
load through PgBouncer. Each prints its figures (durations, request counts, failures).
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
import yaml
from e2e.conftest import new_username
from e2e.traffic import Traffic

from .conftest import ENV_FILE_SETTINGS, ROOT, Swarm, docker

pytestmark = pytest.mark.e2e
STACK_FILE = ROOT / "deploy/swarm/stack.yml"


def keys(node: object, prefix: str = "") -> set[str]:
    """Return every key path of a YAML tree (lists of mappings included)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found |= {f"{prefix}{key}", *keys(value, f"{prefix}{key}.")}
    elif isinstance(node, list):
        for item in node:
            found |= keys(item, prefix)
    return found


def test_stack_deploy_ignored_no_key_of_the_stack_file(swarm: Swarm) -> None:
    assert "Ignoring" not in swarm.up_output, swarm.up_output  # unsupported/deprecated options
    rendered = subprocess.run(
        ["docker", "stack", "config", "-c", str(STACK_FILE)],
        env=swarm.env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    source = yaml.safe_load(STACK_FILE.read_text())
    loaded = yaml.safe_load(rendered)
    for name, service in source["services"].items():
        dropped = keys(service) - keys(loaded["services"][name])
        assert not dropped, f"{name}: docker stack config dropped {sorted(dropped)}"


def test_settings_from_the_env_file_are_in_effect(swarm: Swarm) -> None:
    """`docker stack deploy` reads no .env: the make targets read it as compose does."""
    for service in ("web", "worker"):
        running = dict(
            line.split("=", 1) for line in swarm.exec(service, "env").splitlines() if "=" in line
        )
        for name, value in ENV_FILE_SETTINGS.items():
            assert running.get(name) == value, (service, name, running.get(name))


def test_migrations_ran_once_before_any_web_task(swarm: Swarm) -> None:
    out = docker("service", "ps", "--format", "{{.CurrentState}}", swarm.service("migrate"))
    assert [line.split()[0] for line in out.splitlines()].count("Complete") == 1, out
    done = docker("inspect", "-f", "{{.Status.Timestamp.UnixNano}}", *_task_ids(swarm, "migrate"))
    created = docker("inspect", "-f", "{{.CreatedAt.UnixNano}}", *_task_ids(swarm, "web"))
    ended, first_web = max(map(int, done.split())), min(map(int, created.split()))
    print(f"the first web task was created {(first_web - ended) / 1e9:.2f} s after migrate ended")
    assert ended < first_web, "a web task was created before migrate ended"


def _task_ids(swarm: Swarm, service: str) -> list[str]:
    return docker("service", "ps", "-q", "--no-trunc", swarm.service(service)).split()


def test_https_register_login_sessions_shared_by_3_replicas_logout(swarm: Swarm) -> None:
    http = swarm.http
    with http.session() as client:
        redirect = client.get(
            f"http://127.0.0.1:{http.http_port}/login", allow_redirects=False, timeout=10
        )
        assert redirect.status_code == 301
        # To https://SERVER_NAME (localhost here), never the Host the client named.
        assert redirect.headers["Location"] == f"https://localhost:{http.https_port}/login"
        username = new_username()
        http.register(client, username)
        http.login(client, username)
        served_by = set()
        for _ in range(30):
            page = client.get(http.base_url + "/dashboard", allow_redirects=False, timeout=10)
            assert page.status_code == 200 and f"Welcome {username}!" in page.text
            served_by.add(page.headers["X-Served-By"])
        # One session, read from Redis by every replica: signed in on all three.
        assert len(served_by) == 3, served_by
        assert http.post_form(client, "/logout", {}).status_code == 200
        after = client.get(http.base_url + "/dashboard", allow_redirects=False, timeout=10)
        assert after.status_code in (302, 303) and "/login" in after.headers["Location"]


def test_rolling_update_under_traffic_drops_nothing(swarm: Swarm) -> None:
    before = swarm.image("web")
    with Traffic(swarm.http) as tally:
        started = time.monotonic()
        deploy = swarm.make("swarm-deploy", env={"APP_VERSION": f"e2e-{time.time_ns()}"})
        took = time.monotonic() - started
    print(deploy.stdout + deploy.stderr)
    after = swarm.image("web")
    swarm.images |= {before, after}
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert after != before
    assert swarm.running_images("web") == [after] * 3
    print(f"make swarm-deploy took {took:.1f} s")
    print(tally.summary("swarm rolling update"))
    assert sum(tally.failures.values()) == 0, tally.summary("swarm rolling update")


def test_a_broken_image_is_rolled_back_by_swarm(swarm: Swarm) -> None:
    good = swarm.image("web")
    broken = f"flask-stack-web:e2e-broken-{time.time_ns()}"
    swarm.images.add(broken)
    # Starts, then exits 1 at once: never healthy. (migrate overrides the command: it runs.)
    dockerfile = (
        f'FROM {good}\nCMD ["python", "-c", "raise SystemExit(\\"deliberately broken\\")"]\n'
    )
    subprocess.run(
        ["docker", "build", "-q", "-t", broken, "-"],
        input=dockerfile, capture_output=True, text=True, check=True,
    )  # fmt: skip
    with Traffic(swarm.http) as tally:
        started = time.monotonic()
        deploy = swarm.make("swarm-deploy", env={"SWARM_BUILD": "no", "WEB_IMAGE": broken})
        took = time.monotonic() - started
    output = deploy.stdout + deploy.stderr
    print(output)
    assert deploy.returncode != 0, output
    assert re.search(r"rollback", output), output
    assert swarm.image("web") == good  # Swarm put the previous spec back by itself
    assert swarm.running_images("web") == [good] * 3
    print(f"broken deploy and rollback took {took:.1f} s")
    print(tally.summary("swarm rollback"))
    assert sum(tally.failures.values()) == 0, tally.summary("swarm rollback")


def test_four_replicas_under_load_see_no_connection_error(swarm: Swarm) -> None:
    http = swarm.http
    with Traffic(http, clients=12) as tally:
        docker("service", "scale", "--detach=false", f"{swarm.service('web')}=4", timeout=300)
        time.sleep(15)  # all four serve under load
        server_connections = swarm.exec(
            "db",
            'psql -qtA -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c '
            '"SELECT count(*), count(DISTINCT client_addr) FROM pg_stat_activity '
            "WHERE usename = 'app_web'\"",
        )
    try:
        with http.session() as client:
            username = new_username()
            http.register(client, username)
            http.login(client, username)
            served_by = {
                client.get(http.base_url + "/dashboard", timeout=10).headers["X-Served-By"]
                for _ in range(40)
            }
        assert len(served_by) == 4, served_by
        # 4 replicas x 2 workers x up to 4 pooled connections = 32 clients of PgBouncer;
        # PostgreSQL saw at most PgBouncer's pool (default_pool_size 20) from web's role.
        connections, sources = map(int, server_connections.strip().split("|"))
        print(f"web's PostgreSQL connections under load: {connections}, from {sources} address")
        assert connections <= 20
        assert sources == 1  # all from PgBouncer, none straight from a web replica
        print(tally.summary("4 replicas under load"))
        assert sum(tally.failures.values()) == 0, tally.summary("4 replicas under load")
        pgbouncer_log = docker("service", "logs", "--raw", swarm.service("pgbouncer"))
        assert "no more connections allowed" not in pgbouncer_log
    finally:
        docker("service", "scale", "--detach=false", f"{swarm.service('web')}=3", timeout=300)


def test_rotating_the_redis_secrets_keeps_sessions_and_logins_working(swarm: Swarm) -> None:
    http = swarm.http
    with http.session() as client:
        username = new_username()
        http.register(client, username)
        http.login(client, username)
        rotate = swarm.make("swarm-rotate", env={"SECRET": "redis"})
        assert rotate.returncode == 0, rotate.stdout + rotate.stderr
        assert f"{swarm.name}_redis_conf_v2" in rotate.stdout
        started = time.monotonic()
        deploy = swarm.make("swarm-deploy")
        print(deploy.stdout + deploy.stderr)
        print(f"redis secret rotation deployed in {time.monotonic() - started:.1f} s")
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        swarm.images.add(swarm.image("web"))
        mounted = docker(
            "service", "inspect", "-f",
            "{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}} {{end}}",
            swarm.service("redis"),
        ).split()  # fmt: skip
        assert (
            f"{swarm.name}_redis_conf_v2" in mounted
            and f"{swarm.name}_redis_conf_v1" not in mounted
        )
        # The session outlived Redis' restart (append-only file) and the new passwords.
        page = client.get(http.base_url + "/dashboard", allow_redirects=False, timeout=10)
        assert page.status_code == 200 and f"Welcome {username}!" in page.text
    with http.session() as other:
        http.login(other, username)


def test_down_then_up_brings_the_same_data_back_with_working_passwords(swarm: Swarm) -> None:
    """The user's path: `make swarm-down` keeps the volumes, so it must keep the swarm whose
    secrets hold their passwords; the next `make swarm-up` opens the same database."""
    http, username = swarm.http, new_username()
    with http.session() as client:
        http.register(client, username)
    down = swarm.make("swarm-down")
    print(down.stdout + down.stderr)
    assert down.returncode == 0
    assert "kept the swarm" in down.stdout + down.stderr
    assert docker("info", "-f", "{{.Swarm.LocalNodeState}}").strip() == "active"
    up = swarm.make("swarm-up")
    print(up.stdout + up.stderr)
    assert up.returncode == 0, up.stdout + up.stderr
    swarm.images.add(swarm.image("web"))
    with http.session() as client:
        http.login(client, username)  # the account from before, with the same password

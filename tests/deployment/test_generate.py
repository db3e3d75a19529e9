"""deploy/generate.py: compose is the one source of the Swarm stack and the Kubernetes settings.

The generated files are committed so each target can be read and deployed as it is; they
must be what the generator makes from today's docker-compose.yml (`make generate`).
"""

from __future__ import annotations

import copy
import subprocess
import sys

import generate
import pytest
import yaml

COMPOSE = generate.load(generate.COMPOSE_FILE)
TARGETS = generate.load(generate.TARGETS_FILE)


def test_the_generated_files_are_fresh():
    stale = [str(path.relative_to(generate.ROOT)) for path in generate.stale()]
    assert stale == [], f"stale: {stale}; run `make generate` and commit the result"


def test_check_mode_names_a_stale_file_and_fails(tmp_path, monkeypatch):
    stack = tmp_path / "stack.yml"
    stack.write_text("services: {}\n")
    monkeypatch.setattr(generate, "STACK_FILE", stack)
    monkeypatch.setattr(generate, "K8S_DIR", tmp_path)
    assert generate.main(["--check"]) == 1
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
    assert yaml.safe_load(stack.read_text())["services"]["web"]


def test_a_changed_compose_value_reaches_swarm_and_kubernetes():
    compose = copy.deepcopy(COMPOSE)
    compose["x-app-env"]["RATELIMIT_LOGIN"] = "${RATELIMIT_LOGIN:-9/minute}"
    compose["x-app-env"]["NEW_SETTING"] = "${NEW_SETTING:-on}"
    for name in ("web", "worker", "migrate", "housekeeping"):
        compose["services"][name]["environment"].update(
            RATELIMIT_LOGIN=compose["x-app-env"]["RATELIMIT_LOGIN"],
            NEW_SETTING=compose["x-app-env"]["NEW_SETTING"],
        )
    compose["services"]["web"]["environment"]["GUNICORN_THREADS"] = "${GUNICORN_THREADS:-8}"
    compose["services"]["redis"]["image"] = "redis:8.2"
    stack = generate.swarm_stack(compose, TARGETS)["services"]
    for name in ("web", "worker", "migrate", "housekeeping"):
        assert stack[name]["environment"]["RATELIMIT_LOGIN"] == "${RATELIMIT_LOGIN:-9/minute}"
        assert stack[name]["environment"]["NEW_SETTING"] == "${NEW_SETTING:-on}"
    assert stack["web"]["environment"]["GUNICORN_THREADS"] == "${GUNICORN_THREADS:-8}"
    assert stack["redis"]["image"] == "redis:8.2"
    k8s = generate.kubernetes_env(compose, TARGETS, {}.get)
    assert k8s["app-env"]["RATELIMIT_LOGIN"] == "9/minute"
    assert k8s["app-env"]["NEW_SETTING"] == "on"
    assert k8s["web-env"]["GUNICORN_THREADS"] == "8"
    # .env's (or the shell's) value wins, as with compose.
    k8s = generate.kubernetes_env(compose, TARGETS, {"RATELIMIT_LOGIN": "3/minute"}.get)
    assert k8s["app-env"]["RATELIMIT_LOGIN"] == "3/minute"


def test_a_default_lives_in_compose_alone():
    """BCRYPT_LOG_ROUNDS: empty means the app's default (web/app/config.py), on every target."""
    assert COMPOSE["x-app-env"]["BCRYPT_LOG_ROUNDS"] == "${BCRYPT_LOG_ROUNDS:-}"
    stack = generate.swarm_stack(COMPOSE, TARGETS)["services"]
    assert stack["web"]["environment"]["BCRYPT_LOG_ROUNDS"] == "${BCRYPT_LOG_ROUNDS:-}"
    assert generate.kubernetes_env(COMPOSE, TARGETS, {}.get)["app-env"]["BCRYPT_LOG_ROUNDS"] == ""
    overlay = yaml.safe_dump(TARGETS)
    assert "BCRYPT_LOG_ROUNDS" not in overlay


def test_swarm_gets_compose_healthchecks_and_hardening_in_its_own_terms():
    stack = generate.swarm_stack(COMPOSE, TARGETS)["services"]
    services = COMPOSE["services"]
    assert stack["web"]["healthcheck"] == services["web"]["healthcheck"]
    assert stack["nginx"]["healthcheck"]["start_period"] == "60s"  # targets.yml adds it
    assert stack["db"]["stop_grace_period"] == services["db"]["stop_grace_period"]
    assert stack["web"]["cap_drop"] == ["ALL"] and stack["web"]["read_only"] is True
    # compose's tmpfs and shm_size, as tmpfs mounts (docker stack deploy ignores the keys).
    assert {"type": "tmpfs", "target": "/tmp"} in stack["web"]["volumes"]  # noqa: S108
    shm = {"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": 128 * 1024**2}}  # noqa: S108
    assert shm in stack["db"]["volumes"]
    # Secrets flat under /run/secrets/; no secrets volume of compose's survives.
    assert stack["web"]["environment"]["SECRET_KEY_FILE"] == "/run/secrets/secret_key"
    assert stack["redis"]["command"][1] == "/run/secrets/redis_conf"
    assert not [v for v in stack["web"]["volumes"] if "secrets" in str(v)]


def test_a_new_compose_service_must_be_placed_or_omitted_on_swarm():
    compose = copy.deepcopy(COMPOSE)
    compose["services"]["search"] = {"image": "opensearch:2"}
    with pytest.raises(ValueError, match=r"say whether \['search'\] run on Swarm"):
        generate.swarm_stack(compose, TARGETS)


def test_a_compose_key_without_a_swarm_rule_is_an_error_not_a_silent_drop():
    compose = copy.deepcopy(COMPOSE)
    compose["services"]["web"]["sysctls"] = {"net.core.somaxconn": 1024}
    with pytest.raises(ValueError, match=r"web: no rule for \['sysctls'\]"):
        generate.swarm_stack(compose, TARGETS)
    compose = copy.deepcopy(COMPOSE)
    compose["services"]["worker"]["ports"] = ["8080:8080"]
    with pytest.raises(ValueError, match="worker: compose publishes ports"):
        generate.swarm_stack(compose, TARGETS)


def test_make_generate_runs_the_generator_in_check_mode_cleanly():
    result = subprocess.run(
        [sys.executable, str(generate.ROOT / "deploy" / "generate.py"), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

"""deploy/swarm/swarm.py decides from Docker's JSON: those decisions, without Docker.

The JSON below has the shape `docker service inspect`, `docker inspect <task>`,
`docker stack services --format '{{json .}}'` and `docker service ps --format '{{json .}}'`
print (Engine 20.10+); tests/swarm runs the whole program against a real swarm.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("swarm_py", ROOT / "deploy/swarm/swarm.py")
assert _spec and _spec.loader
swarm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(swarm)

NEW = "flask-stack-web:0123456789ab"
OLD = "flask-stack-web:ba9876543210"


def service(image: str, force: int = 0, update: dict | None = None) -> dict:
    spec = {"TaskTemplate": {"ContainerSpec": {"Image": image}}}
    if force:  # Docker omits a zero ForceUpdate
        spec["TaskTemplate"]["ForceUpdate"] = force
    return {"Spec": spec, **({"UpdateStatus": update} if update else {})}


def task(image: str, state: str, force: int = 0) -> dict:
    spec = {"ContainerSpec": {"Image": image}, **({"ForceUpdate": force} if force else {})}
    return {"Spec": spec, "Status": {"State": state}}


def test_migrate_is_complete_only_for_a_task_of_the_current_spec_and_image():
    migrate = service(NEW, force=2)
    # An earlier run's success (older force counter, or the old image) is not this one's.
    earlier = [task(OLD, "complete", force=2), task(NEW, "complete", force=1)]
    assert swarm.migrate_outcome(migrate, earlier, NEW) is None
    assert swarm.migrate_outcome(migrate, [*earlier, task(NEW, "running", 2)], NEW) is None
    assert swarm.migrate_outcome(migrate, [*earlier, task(NEW, "complete", 2)], NEW) == "complete"
    # The first deploy: no force counter at all.
    assert swarm.migrate_outcome(service(NEW), [task(NEW, "complete")], NEW) == "complete"


def test_migrate_has_failed_after_as_many_failures_as_its_restart_policy_allows():
    migrate = service(NEW, force=3)
    failures = [task(NEW, "failed", 3)] * (swarm.MIGRATE_MAX_ATTEMPTS - 1)
    assert swarm.migrate_outcome(migrate, failures, NEW) is None
    assert swarm.migrate_outcome(migrate, [*failures, task(NEW, "rejected", 3)], NEW) == "failed"
    # Failures of an earlier run do not count.
    old_failures = [task(NEW, "failed", 2)] * 9
    assert swarm.migrate_outcome(migrate, old_failures, NEW) is None


def test_the_targets_restart_policy_is_the_one_the_program_counts():
    import yaml

    stack = yaml.safe_load((ROOT / "deploy/swarm/stack.yml").read_text())
    policy = stack["services"]["migrate"]["deploy"]["restart_policy"]
    assert policy["max_attempts"] == swarm.MIGRATE_MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("replicas", "ready"),
    [("3/3", True), ("2/3", False), ("0/0", True), ("1/1 (max 1 per node)", True), ("0/1", False)],
)
def test_replicas_ready(replicas, ready):
    assert swarm.replicas_ready(replicas) is ready


ROLLED_BACK = {"State": "rollback_completed", "StartedAt": "2026-12-02T04:00:00Z", "Message": "x"}


@pytest.mark.parametrize(
    ("update", "before", "verdict"),
    [
        (None, ("", ""), None),  # never updated
        ({"State": "updating", "StartedAt": "t2"}, ("", ""), "updating"),
        ({"State": "completed", "StartedAt": "t2"}, ("", ""), None),
        (ROLLED_BACK, ("", ""), "failed"),  # this deploy's update rolled back
        ({"State": "rollback_started", "StartedAt": "t2"}, ("completed", "t1"), "failed"),
        ({"State": "paused", "StartedAt": "t2"}, ("completed", "t1"), "failed"),
        # An earlier deploy's rollback, unchanged by this one (nothing to update): old news.
        (ROLLED_BACK, ("rollback_completed", "2026-12-02T04:00:00Z"), None),
    ],
)
def test_web_verdict_judges_only_this_deploys_update(update, before, verdict):
    assert swarm.web_verdict(service(NEW, update=update), before) == verdict


def test_stale_tasks_are_running_tasks_of_another_image_than_the_spec():
    running = [
        {"Image": NEW, "CurrentState": "Running 3 seconds ago"},
        {"Image": f"{OLD}@sha256:abc", "CurrentState": "Running 2 minutes ago"},
        {"Image": OLD, "CurrentState": "Shutdown 1 second ago"},
    ]
    assert swarm.stale_tasks(service(NEW), running) == [running[1]]
    assert swarm.stale_tasks(service(NEW), running[::2]) == []


def test_json_lines_reads_the_cli_s_one_object_per_line():
    text = '{"Name":"s_web","Replicas":"3/3"}\n\n{"Name":"s_db","Replicas":"1/1"}\n'
    assert [e["Name"] for e in swarm.json_lines(text)] == ["s_web", "s_db"]


def test_deploy_output_keeps_only_what_matters():
    said = (
        "Creating network s_back\nCreating service s_web\nUpdating service s_db (id: x)\n"
        "Ignoring unsupported options: restart\n"
        "Since --detach=false was not specified, tasks will be created in the background.\n"
    )
    assert swarm.deploy_output(said) == "Ignoring unsupported options: restart"


def test_usage_is_refused_with_status_2(capsys):
    assert swarm.main([]) == 2
    assert swarm.main(["sideways"]) == 2
    assert "usage: swarm.py up | deploy | down" in capsys.readouterr().err


def test_the_stack_names_the_secret_versions_manage_secrets_makes():
    import yaml

    spec = importlib.util.spec_from_file_location("ms", ROOT / "deploy/swarm/manage_secrets.py")
    assert spec and spec.loader
    manage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(manage)
    targets = yaml.safe_load((ROOT / "deploy/targets.yml").read_text())["swarm"]["secrets"]
    made = {variable: sorted(names) for variable, names in manage.GROUPS.values()}
    made["REDIS_VERSION"] = sorted([*made["REDIS_VERSION"], "redis_conf"])
    assert {variable: sorted(names) for variable, names in targets.items()} == made


def test_the_smtp_password_secret_is_the_users_and_never_empty(monkeypatch):
    spec = importlib.util.spec_from_file_location("ms", ROOT / "deploy/swarm/manage_secrets.py")
    assert spec and spec.loader
    manage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(manage)
    # Unset: a blank line (Swarm refuses an empty secret; the app reads it as no password).
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    assert manage.new_values("smtp_password") == {"smtp_password": "\n"}
    monkeypatch.setenv("SMTP_PASSWORD", "provider-password")
    assert manage.new_values("smtp_password") == {"smtp_password": "provider-password"}

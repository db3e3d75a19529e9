"""Replicas come, go and restart under signed-in traffic: not one request may fail.

Each test runs several signed-in clients (GETs and form POSTs, see traffic.py) through nginx
while the web tier changes, then prints how many requests were made and their latency
percentiles. The negative control shows the same traffic does fail when a replacement is
done naively, so these tests can fail.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from .conftest import Stack
from .traffic import Traffic

pytestmark = pytest.mark.e2e


def started_at(stack: Stack, service: str) -> str:
    """Return when the service's container started (it changes if it is restarted)."""
    [container] = stack.running(service)
    return f"{container} {stack.inspect(container)['State']['StartedAt']}"


def assert_no_failures(tally_summary: str, failures: int) -> None:
    print(tally_summary)
    assert failures == 0, tally_summary


def test_scale_out_and_in_drops_nothing(stack: Stack) -> None:
    with Traffic(stack) as tally:
        stack.up("--scale", "web=3")
        assert len(stack.running("web")) == 3
        time.sleep(4)  # the new replicas take traffic
        stack.up("--scale", "web=1")
        assert len(stack.running("web")) == 1
    assert_no_failures(tally.summary("scale 1->3->1"), sum(tally.failures.values()))


def test_restart_of_one_of_two_replicas_drops_nothing(stack: Stack) -> None:
    stack.up("--scale", "web=2")
    try:
        first = stack.running("web")[0]
        with Traffic(stack) as tally:
            subprocess.run(["docker", "restart", first], check=True, capture_output=True)
            # Back in service: healthy again, and answering through nginx.
            stack.up("--scale", "web=2")
            time.sleep(4)
        assert_no_failures(tally.summary("restart 1 of 2"), sum(tally.failures.values()))
    finally:
        stack.up("--scale", "web=1")


def test_make_deploy_replaces_every_replica_and_drops_nothing(stack: Stack) -> None:
    stack.up("--scale", "web=2")
    try:
        before = set(stack.running("web"))
        backends = {s: started_at(stack, s) for s in ("db", "redis", "nginx")}
        with Traffic(stack) as tally:
            started = time.monotonic()
            # A new build (another version label: a new image under the same tag).
            deploy = stack.make("deploy", env={"APP_VERSION": f"e2e-{time.time_ns()}"})
            took = time.monotonic() - started
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        after = set(stack.running("web"))
        assert len(after) == 2, "the deploy changed the number of replicas"
        assert not before & after, "an old replica is still running"
        restarted = [s for s, at in backends.items() if started_at(stack, s) != at]
        assert not restarted, f"the deploy restarted {restarted}"
        print(f"make deploy took {took:.1f} s")
        assert_no_failures(tally.summary("make deploy"), sum(tally.failures.values()))
        # The next plain `up` finds the deployed replicas current: it recreates nothing.
        nginx = stack.running("nginx")
        stack.up("--scale", "web=2")
        assert set(stack.running("web")) == after
        assert stack.running("nginx") == nginx
    finally:
        stack.up("--scale", "web=1")


def test_a_broken_image_stops_the_deploy_before_any_old_replica(stack: Stack) -> None:
    before = set(stack.running("web"))
    broken = f"{stack.env['WEB_IMAGE']}-broken"
    # An image that migrates fine but whose web server never starts.
    dockerfile = (
        f"FROM {stack.env['WEB_IMAGE']}\n"
        'CMD ["python", "-c", "raise SystemExit(\'web: deliberately broken image\')"]\n'
    )
    subprocess.run(
        ["docker", "build", "-t", broken, "-"],
        input=dockerfile,
        text=True,
        check=True,
        capture_output=True,
    )
    try:
        deploy = stack.make("deploy", "DEPLOY_BUILD=no", env={"WEB_IMAGE": broken})
        assert deploy.returncode != 0
        assert "did not become ready" in deploy.stderr, deploy.stderr
        assert "deliberately broken image" in deploy.stderr, "the reason is not shown"
        assert set(stack.running("web")) == before
        assert stack.session().get(stack.base_url + "/healthz", timeout=10).status_code == 200
    finally:
        subprocess.run(["docker", "image", "rm", "-f", broken], capture_output=True, check=False)


def test_negative_control_naive_replacement_fails_requests(stack: Stack) -> None:
    # Restart the only replica with no drain: what the tests above must never see.
    with Traffic(stack) as tally:
        stack.compose("restart", "-t", "0", "web")
        stack.up()
    print(tally.summary("naive stop-then-start (negative control)"))
    assert sum(tally.failures.values()) > 0, "the traffic did not notice a full outage"

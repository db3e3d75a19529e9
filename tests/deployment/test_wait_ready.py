"""deploy/wait_ready.py: when `make deploy` takes a new web replica as ready, or gives up."""

from __future__ import annotations

import pytest
import wait_ready


def container(status: str = "running", health: str | None = "healthy", restarts: int = 0):
    state = {"Status": status, **({"Health": {"Status": health}} if health else {})}
    return {"State": state, "RestartCount": restarts}


@pytest.mark.parametrize(
    ("inspected", "expected"),
    [
        (container(), "healthy"),
        (container(health="starting"), "waiting"),
        (container(health=None), "waiting"),  # no healthcheck: never taken as healthy
        (container(status="exited"), "failed"),
        (container(status="restarting"), "failed"),
        # It crashed and Docker restarted it: given up at once (it would flap in nginx's DNS).
        (container(restarts=1), "failed"),
    ],
)
def test_verdict(inspected, expected):
    assert wait_ready.verdict(inspected) == expected


def test_usage_is_refused_with_status_2():
    assert wait_ready.main(["only-one"]) == 2

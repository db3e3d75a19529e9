"""The operator commands: flask sessions list|end."""

from __future__ import annotations

from helpers import FIREFOX, Auth


def test_list_shows_a_users_sessions(app, make_client):
    Auth(make_client(FIREFOX)).signed_in("alice")
    result = app.test_cli_runner().invoke(args=["sessions", "list", "--user", "ALICE"])
    assert result.exit_code == 0, result.output
    assert "alice" in result.output and "Firefox on Ubuntu" in result.output
    assert "127.0.0.1" in result.output


def test_end_ends_a_users_sessions_and_remember_me(app, make_client):
    alice = make_client()
    Auth(alice).signed_in("alice", remember=True)
    bob = make_client()
    Auth(bob).signed_in("bob")
    result = app.test_cli_runner().invoke(args=["sessions", "end", "--user", "alice"])
    assert result.exit_code == 0, result.output
    assert "ended 1 session(s)" in result.output
    assert alice.get("/dashboard").status_code == 302  # neither session nor remember cookie
    assert bob.get("/dashboard").status_code == 200


def test_end_all(app, make_client):
    clients = [make_client() for _ in range(2)]
    for n, client in enumerate(clients):
        Auth(client).signed_in(f"user{n}")
    result = app.test_cli_runner().invoke(args=["sessions", "end", "--all"])
    assert "ended 2 session(s)" in result.output
    assert all(c.get("/dashboard").status_code == 302 for c in clients)


def test_cli_needs_exactly_one_target(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["sessions", "list"]).exit_code == 2
    missing = runner.invoke(args=["sessions", "end", "--user", "nobody"])
    assert missing.exit_code == 1 and "no user called 'nobody'" in missing.output

"""The decisions of `make deploy HOST=...` (deploy/remote.py, deploy/preflight.py), without
Docker or a host: which images to ship, how releases are named, kept and compared, what
settings travel and how their change is shown, and how the preflight reads a host's answers.
tests/host runs the whole deploy against a real second host."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime

import compose_env
import preflight
import pytest
import remote

COMPOSE_TEXT = """
services:
  web:
    image: ${WEB_IMAGE:-flask-stack-web:latest}
    environment:
      SECRET_KEY: ${SECRET_KEY:-}
      TRUSTED_HOSTS: ${SERVER_NAME:-localhost}
    ports: ["${HTTPS_PORT:-443}:443"]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssh://deploy@example.com", remote.Target("example.com", "deploy")),
        ("ssh://deploy@example.com:2222", remote.Target("example.com", "deploy", 2222)),
        ("deploy@192.0.2.7", remote.Target("192.0.2.7", "deploy")),
        ("ssh://myalias", remote.Target("myalias")),
        ("ssh://root@[2001:db8::1]:22", remote.Target("2001:db8::1", "root", 22)),
    ],
)
def test_host_is_parsed_from_an_ssh_url(text: str, expected: remote.Target) -> None:
    assert remote.parse_host(text) == expected


@pytest.mark.parametrize("text", ["http://example.com", "a@b@c", "host:port", ""])
def test_a_host_that_is_no_ssh_destination_is_refused(text: str) -> None:
    with pytest.raises(remote.DeployError, match="expected ssh://"):
        remote.parse_host(text)


def test_services_built_here_are_pinned_by_their_image_id() -> None:
    services = {
        "nginx": {"build": {"context": "."}},
        "web": {"build": {"context": "web"}, "image": "flask-stack-web:latest"},
        "migrate": {"image": "flask-stack-web:latest"},
        "redis": {"image": "redis:8"},
    }
    ids = {
        "proj-nginx": "sha256:" + "a" * 64,
        "flask-stack-web:latest": "sha256:" + "b" * 64,
        "redis:8": "sha256:" + "c" * 64,
    }
    pins = remote.pinned_images(services, "proj", ids)
    assert pins == {
        "nginx": "proj-nginx:aaaaaaaaaaaa",
        "web": "flask-stack-web:bbbbbbbbbbbb",
        "migrate": "flask-stack-web:bbbbbbbbbbbb",  # the same image as web, the same pin
        "redis": "redis:8",  # not built here: its own name
    }


def test_an_unchanged_image_keeps_its_pin_and_a_changed_one_gets_a_new_one() -> None:
    services = {"web": {"build": {}, "image": "registry.example:5000/team/web:1.0"}}
    first = remote.pinned_images(
        services, "p", {"registry.example:5000/team/web:1.0": "sha256:1" * 8}
    )
    again = remote.pinned_images(
        services, "p", {"registry.example:5000/team/web:1.0": "sha256:1" * 8}
    )
    changed = remote.pinned_images(
        services, "p", {"registry.example:5000/team/web:1.0": "sha256:2" * 8}
    )
    assert first == again
    assert first["web"].startswith("registry.example:5000/team/web:")  # the port is no tag
    assert changed != first


def test_only_images_whose_id_the_host_lacks_are_shipped() -> None:
    wanted = {"web:aaa": "sha256:a", "nginx:bbb": "sha256:b", "redis:8": "sha256:r"}
    assert remote.images_to_ship(wanted, set()) == ["nginx:bbb", "redis:8", "web:aaa"]
    assert remote.images_to_ship(wanted, {"sha256:r", "sha256:b"}) == ["web:aaa"]
    assert remote.images_to_ship(wanted, {"sha256:a", "sha256:b", "sha256:r"}) == []


def test_the_override_pins_every_service() -> None:
    text = remote.override_yaml({"web": "w:1", "nginx": "n:2"})
    assert text.splitlines()[1:] == [
        "services:",
        "  nginx:",
        '    image: "n:2"',
        "  web:",
        '    image: "w:1"',
    ]


def test_settings_compose_reads_travel_but_local_image_names_and_empties_do_not() -> None:
    environ = {
        "SERVER_NAME": "example.com",
        "SECRET_KEY": "",  # empty: generated on the host
        "WEB_IMAGE": "mine:dev",  # pinned by release.yml instead
        "HTTPS_PORT": "8443",
        "PATH": "/usr/bin",  # not a setting of the stack
        "SMTP_HOST": "smtp.example.com",  # set in the env file: travels too
        "DEPLOY_SSH_CONFIG": "ci/ssh_config",  # the deploy's own
    }
    keys = {"SMTP_HOST", "DEPLOY_SSH_CONFIG"}
    assert remote.travelling_settings(environ, COMPOSE_TEXT, keys) == {
        "HTTPS_PORT": "8443",
        "SERVER_NAME": "example.com",
        "SMTP_HOST": "smtp.example.com",
    }


@pytest.mark.parametrize(
    "value", ["plain", "with space", "a$b", "x#y", 'say "hi"', "1000/minute", "", "trailing "]
)
def test_the_release_env_reads_back_as_the_same_values(value: str) -> None:
    text = remote.render_env({"SETTING": value}, "proj")
    parsed = compose_env.parse_env_file(text, lambda _: None)
    assert parsed["SETTING"] == value
    assert parsed["COMPOSE_PROJECT_NAME"] == "proj"
    assert parsed["COMPOSE_FILE"] == "docker-compose.yml:release.yml"


def test_a_value_no_env_file_can_hold_is_refused() -> None:
    with pytest.raises(remote.DeployError, match="SETTING"):
        remote.render_env({"SETTING": "it's\nmultiline"}, "proj")


def test_the_settings_diff_names_each_change_and_hides_secret_values() -> None:
    old = {"SERVER_NAME": "a.example", "SMTP_PASSWORD": "old-secret", "LOG_LEVEL": "INFO",
           "COMPOSE_FILE": "x"}  # fmt: skip
    new = {"SERVER_NAME": "b.example", "SMTP_PASSWORD": "new-secret", "HSTS_MAX_AGE": "300",
           "COMPOSE_FILE": "y"}  # fmt: skip
    lines = remote.settings_diff(old, new)
    assert lines == [
        "+ HSTS_MAX_AGE='300'",
        "- LOG_LEVEL (was 'INFO')",
        "~ SERVER_NAME: 'a.example' -> 'b.example'",
        "~ SMTP_PASSWORD: (hidden) -> (hidden)",
    ]
    assert not any("secret" in line for line in lines)
    assert remote.settings_diff(new, new) == []


def test_a_release_digest_changes_with_images_or_settings_only() -> None:
    files = {"docker-compose.yml": "c", "release.yml": "images 1", ".env": "A=1\n"}
    same = {**files, "release.json": '{"by": "someone else"}'}
    assert remote.release_digest(files) == remote.release_digest(same)
    assert remote.release_digest(files) != remote.release_digest({**files, "release.yml": "2"})
    assert remote.release_digest(files) != remote.release_digest({**files, ".env": "A=2\n"})


def test_releases_are_named_by_time_and_commit_and_sort_in_time_order() -> None:
    early = remote.release_name(datetime(2026, 12, 7, 9, 5, 1, tzinfo=UTC), "abc123")
    late = remote.release_name(datetime(2026, 12, 7, 19, 0, 0, tzinfo=UTC), "000000")
    assert early == "20261207T090501Z-abc123"
    assert sorted([late, early]) == [early, late]


def test_old_releases_are_removed_but_never_current_or_previous() -> None:
    names = [f"2026120{n}T000000Z-c" for n in range(1, 8)]
    assert remote.releases_to_remove(names, 5, set()) == names[:2]
    assert remote.releases_to_remove(names, 5, {names[0]}) == [names[1]]
    assert remote.releases_to_remove(names[:3], 5, set()) == []


def test_an_audit_line_says_who_when_which_commit_and_the_result() -> None:
    line = remote.audit_line(
        datetime(2026, 12, 7, 19, 0, tzinfo=UTC), "ann@laptop", "abc123", "r1", "ok"
    )
    assert line == "2026-12-07T19:00:00Z who=ann@laptop commit=abc123 release=r1 result=ok"


@pytest.mark.parametrize(
    "text",
    [
        '{"Service": "web", "State": "running"}\n{"Service": "web", "State": "running"}\n'
        '{"Service": "migrate", "State": "exited"}\n{"Service": "nginx", "State": "running"}',
        '[{"Service": "web", "State": "running"}, {"Service": "web", "State": "running"},'
        ' {"Service": "migrate", "State": "exited"}, {"Service": "nginx", "State": "running"}]',
    ],
)
def test_running_services_are_counted_from_either_ps_format(text: str) -> None:
    assert remote.running_services(remote.parse_ps(text)) == {"web": 2, "nginx": 1}
    assert remote.parse_ps("") == []


# ---- preflight ------------------------------------------------------------------------
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 00000000:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:0016 0100007F:B3A2 01 00000000:00000000 00:00000000 00000000     0        0 3 1
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0 0
"""


def test_listening_ports_are_read_from_proc_net_tcp() -> None:
    # 22 and 443 (IPv4), 80 (IPv6); the established connection from port 22 is not listening.
    assert preflight.listening_ports(PROC_NET_TCP) == {22, 443, 80}


def test_published_ports_are_read_from_docker_ps() -> None:
    text = "0.0.0.0:80->80/tcp, [::]:80->80/tcp, 0.0.0.0:443->443/tcp\n\n5432/tcp\n"
    assert preflight.published_ports(text) == {80, 443}


def answers(table: dict[str, tuple[int, str, str]]) -> preflight.Run:
    """A host that answers each command from a table (anything else: not found)."""

    def run(command: str) -> tuple[int, str, str]:
        for start, answer in table.items():
            if command.startswith(start):
                return answer
        return (127, "", "not found")

    return run


def test_ports_ours_free_or_taken_each_get_their_line() -> None:
    run = answers({
        "cat /proc/net": (0, PROC_NET_TCP, ""),
        "docker ps --filter": (0, "0.0.0.0:443->443/tcp\n", ""),
        "docker ps --format": (0, "0.0.0.0:443->443/tcp\n", ""),
    })  # fmt: skip
    lines = {c.name: c for c in preflight.check_ports(run, "proj", [80, 443, 8080])}
    assert not lines["port 80"].ok and "taken" in lines["port 80"].found
    assert "HTTP_PORT" in lines["port 80"].fix
    assert lines["port 443"].ok and "this stack" in lines["port 443"].found
    assert lines["port 8080"].ok and lines["port 8080"].found == "free"


def test_a_host_without_docker_fails_with_how_to_install_it() -> None:
    [check] = preflight.check_docker(answers({"command -v docker": (1, "", "")}), "deploy")
    assert not check.ok
    assert "not installed" in check.found and "install" in check.fix
    assert check.line().startswith("preflight: FAIL docker: not installed")


def test_a_user_outside_the_docker_group_is_told_how_to_join_it() -> None:
    run = answers({
        "command -v docker": (0, "/usr/bin/docker\n", ""),
        "docker version": (1, "", "permission denied while trying to connect to the socket"),
    })  # fmt: skip
    [check] = preflight.check_docker(run, "ann")
    assert not check.ok and "ann may not use Docker" in check.found
    assert check.fix.startswith("sudo usermod -aG docker ann")


@pytest.mark.parametrize(
    ("engine", "compose", "ok"),
    [
        ("26.1.5+dfsg1", "2.26.1-4", True),
        ("19.03.1", "2.26.1", False),
        ("27.0.1", "v2.10.0", False),
    ],
)
def test_docker_and_compose_versions_are_checked(engine: str, compose: str, ok: bool) -> None:
    run = answers({
        "command -v docker": (0, "/usr/bin/docker\n", ""),
        "docker version": (0, engine + "\n", ""),
        "docker compose version": (0, compose + "\n", ""),
    })  # fmt: skip
    checks = preflight.check_docker(run, "deploy")
    assert all(c.ok for c in checks) is ok


def test_free_disk_is_compared_with_what_a_deploy_needs() -> None:
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
    df += "/dev/vda 100 50 2097152 5% /var\n"
    run = answers({"df -Pk": (0, df, "")})
    assert preflight.check_disk(run, 1).ok
    low = preflight.check_disk(run, 5)
    assert not low.ok and low.found == "2.0 GB free on /var (5 GB needed)"


@pytest.mark.parametrize(("host_epoch", "ok"), [("1000\n", True), ("1031", False), ("969", False)])
def test_clock_skew_over_thirty_seconds_fails(host_epoch: str, ok: bool) -> None:
    assert preflight.check_clock(host_epoch, 1000.0).ok is ok


def test_dns_must_point_the_server_name_at_the_host() -> None:
    table = {"example.com": {"192.0.2.1"}, "host.example": {"192.0.2.1"}, "other": {"198.51.100.2"}}

    def lookup(name: str) -> set[str]:
        return table.get(name, set())

    assert preflight.check_dns("example.com", "host.example", lookup).ok  # type: ignore[union-attr]
    wrong = preflight.check_dns("example.com", "other", lookup)
    assert wrong and not wrong.ok and "not the host (198.51.100.2)" in wrong.found
    missing = preflight.check_dns("nowhere.example", "other", lookup)
    assert missing and not missing.ok and "does not resolve" in missing.found
    # Names no public DNS answers are not checked.
    assert preflight.check_dns("localhost", "other", lookup) is None
    assert preflight.check_dns("", "other", lookup) is None
    assert preflight.check_dns("127.0.0.1", "other", lookup) is None


def test_versions_are_read_from_any_version_string() -> None:
    assert preflight.version("v2.26.1-4") == (2, 26, 1)
    assert preflight.version("26.1.5+dfsg1") == (26, 1, 5)
    assert preflight.version("nothing") == ()


def test_a_layer_counts_as_on_the_host_only_on_top_of_the_same_layers() -> None:
    chains = remote.layer_chains([["a", "b", "c"], ["a", "x"]])
    assert chains == {("a",), ("a", "b"), ("a", "b", "c"), ("a", "x")}
    manifest = [
        (["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"], ["a", "b", "new"]),
        (["l1/layer.tar", "l4/layer.tar"], ["a", "y"]),
        # "b" on top of "z" is not the host's "b" on top of "a": it travels.
        (["l5/layer.tar", "l6/layer.tar"], ["z", "b"]),
    ]
    assert remote.layers_to_skip(manifest, chains) == {"l1/layer.tar", "l2/layer.tar"}
    assert remote.layers_to_skip(manifest, set()) == set()


def test_a_layer_file_shared_by_two_images_travels_if_either_needs_it() -> None:
    manifest = [(["l1", "l2"], ["a", "b"]), (["l9", "l2"], ["q", "b"])]
    assert remote.layers_to_skip(manifest, {("a",), ("a", "b")}) == {"l1"}


def test_the_gzip_sink_counts_what_it_sends_and_gunzips_back() -> None:
    out = io.BytesIO()
    out.close = lambda: None  # type: ignore[method-assign]  # keep it readable
    sink = remote.GzipSink(out)
    sink.write(b"layer " * 1000)
    sink.close()
    assert sink.written == len(out.getvalue()) < 6000
    assert gzip.decompress(out.getvalue()) == b"layer " * 1000

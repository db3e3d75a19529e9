"""`make deploy HOST=ssh://...` to a fresh second host, as a user runs it (docs/deploying.md).

Ordered: the tests share one host (conftest.py) and each starts where the last one left it:
preflight refusals, the first deploy, the same deploy again, an update under signed-in
traffic with a second deploy refused meanwhile, a broken release that rolls back by itself,
`make rollback`, then `down` and a deploy that starts the stack again with its data and
secrets. The figures (times, bytes shipped, requests) are printed for bench/README.md.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from e2e.conftest import TEST_PASSWORD, new_username
from e2e.traffic import Traffic

from .conftest import Host, docker, second_host, wait_for

pytestmark = pytest.mark.e2e

FIRST: dict[str, str] = {}  # what the first deploy left: its release, its account


def output(proc) -> str:  # type: ignore[no-untyped-def]
    return proc.stdout + proc.stderr


def shipped_bytes(text: str) -> int:
    match = re.search(r"shipped (\d+) bytes, (\d+) image", text)
    assert match, text[-2000:]
    return int(match.group(1))


def signs_in(host: Host, username: str) -> None:
    with host.http.session() as client:
        host.http.login(client, username)


def test_preflight_refuses_a_host_without_docker(tmp_path: Path) -> None:
    with second_host(tmp_path, docker_engine=False) as bare:
        deploy = bare.make("deploy", f"HOST={bare.url}")
    assert deploy.returncode != 0
    assert "preflight: ok   ssh: " in deploy.stdout
    assert "preflight: FAIL docker: not installed on the host" in deploy.stdout
    assert "fix: install Docker Engine" in deploy.stdout
    assert "preflight failed: nothing was changed on the host" in deploy.stderr


def test_preflight_refuses_a_host_whose_port_is_taken(host: Host) -> None:
    # Another program on the host listens on 443 (a second sshd, as good as any).
    pid = "/run/other-443.pid"
    subprocess_args = f"/usr/sbin/sshd -p 443 -o PidFile={pid}"
    docker("exec", host.container, "sh", "-c", subprocess_args)
    try:
        wait_for(lambda: ":01BB 00000000:0000 0A" in host.sh("cat /proc/net/tcp"))
        deploy = host.make("deploy", f"HOST={host.url}")
    finally:
        docker("exec", host.container, "sh", "-c", f'kill "$(cat {pid})"')
    assert deploy.returncode != 0
    assert "preflight: ok   port 80: free" in deploy.stdout
    assert "preflight: FAIL port 443: taken by another program or container" in deploy.stdout
    assert "HTTPS_PORT" in deploy.stdout  # the fix names the setting
    assert host.sh("ls flask-stack/releases 2>/dev/null || true").strip() == ""
    wait_for(lambda: ":01BB 00000000:0000 0A" not in host.sh("cat /proc/net/tcp"))


def test_first_deploy_serves_https_and_an_account_signs_in(
    host: Host, tmp_path_factory: pytest.TempPathFactory
) -> None:
    started = time.monotonic()
    deploy = host.make("deploy", f"HOST={host.url}")
    took = time.monotonic() - started
    assert deploy.returncode == 0
    text = output(deploy)
    assert "first deploy to this host; settings:" in text
    assert "+ WEB_CONCURRENCY='2'" in text
    FIRST["shipped"] = str(shipped_bytes(text))
    print(f"FIGURE first deploy: {took:.0f} s, {FIRST['shipped']} bytes shipped")
    release = host.current_release()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{12}(-dirty)?", release), release
    # The release folder: compose's files and the settings (owner-only), usable in place.
    listing = host.sh("ls -A flask-stack/current/ && stat -c %a flask-stack/current/.env")
    assert listing.split() == [".env", "docker-compose.yml", "release.json", "release.yml", "600"]
    assert host.sh("cd flask-stack/current && docker compose ps -q web").strip()
    assert "result=ok (first deploy)" in host.sh("cat flask-stack/deploys.log")

    host.trust_its_certificate(tmp_path_factory.mktemp("ca"))
    username = new_username()
    with host.http.session() as client:
        host.http.register(client, username)
        host.http.login(client, username)
    FIRST.update(release=release, username=username, web_image=host.image_of("web"))

    # The secrets were generated on the host and never travelled: none is in the release.
    secret_key = host.in_service("web", "cat /run/secrets/app/secret_key").strip()
    db_password = host.in_service("web", "cat /run/secrets/app/postgres_app_password").strip()
    assert len(secret_key) >= 32 and len(db_password) >= 16
    files = host.sh("cat flask-stack/releases/*/* flask-stack/deploys.log")
    assert secret_key not in files and db_password not in files
    assert secret_key not in text and db_password not in text
    FIRST["secret_key"] = secret_key


def test_the_same_deploy_again_changes_nothing_and_says_so(host: Host) -> None:
    containers = host.sh("docker ps -q | sort")
    # HOST from the env file this time, as a user may keep it in .env.
    with host.env_file.open("a") as env_file:
        env_file.write(f"HOST={host.url}\n")
    deploy = host.make("deploy")
    assert deploy.returncode == 0
    assert "nothing to change: deploy@testhost already runs release" in deploy.stdout
    assert "shipping" not in deploy.stdout
    assert host.sh("docker ps -q | sort") == containers
    assert host.current_release() == FIRST["release"]
    assert "result=unchanged" in host.sh("tail -n 1 flask-stack/deploys.log")


def test_an_update_under_signed_in_traffic_loses_no_request(host: Host) -> None:
    backends = {s: host.started_at(s) for s in ("db", "redis", "nginx")}
    version = {"APP_VERSION": f"e2e-{time.time_ns()}"}  # a new web image (another label)
    with Traffic(host.http) as tally:
        started = time.monotonic()
        with host.popen("deploy", f"HOST={host.url}", env=version) as first:
            assert first.stdout
            lines = []
            for line in first.stdout:
                lines.append(line)
                if "holding the host's deploy lock" in line:
                    break
            # A second deploy while the first holds the lock: refused, naming the holder.
            second = host.make("deploy", f"HOST={host.url}", env=version)
            rest = first.stdout.read()
        took = time.monotonic() - started
    text = "".join(lines) + rest
    print(text[-3000:])
    assert second.returncode != 0
    assert "deploy@testhost is being deployed by" in second.stderr
    assert "commit" in second.stderr and "refused" in second.stderr
    assert first.returncode == 0, text[-3000:]
    assert "replacing 1 replica(s) one by one" in text
    assert "~ APP_VERSION" in text or "+ APP_VERSION" in text  # the settings diff
    assert re.search(r"\d+ image\(s\) already on the host", text)
    summary = tally.summary("deploy HOST= update")
    print(f"FIGURE update: {took:.0f} s, {shipped_bytes(text)} bytes shipped; {summary}")
    assert sum(tally.failures.values()) == 0, summary
    # Only what changed travelled: the new web image without the layers the host holds.
    assert shipped_bytes(text) < int(FIRST["shipped"]) / 20
    assert host.image_of("web") != FIRST["web_image"]
    assert host.current_release() != FIRST["release"]
    assert {s: host.started_at(s) for s in backends} == backends, "db, redis or nginx restarted"
    FIRST["second_release"] = host.current_release()
    assert "result=ok;" in host.sh("tail -n 1 flask-stack/deploys.log")


def test_a_broken_release_rolls_back_by_itself_and_the_site_keeps_serving(host: Host) -> None:
    web_before = host.image_of("web")
    broken = f"{host.project}-web:broken"

    dockerfile = (
        f"FROM {host.env['WEB_IMAGE']}\n"
        'CMD ["python", "-c", "raise SystemExit(\'web: deliberately broken image\')"]\n'
    )
    subprocess.run(["docker", "build", "-q", "-t", broken, "-"], input=dockerfile, text=True,
                   check=True, capture_output=True)  # fmt: skip
    deploy = host.make("deploy", f"HOST={host.url}", "DEPLOY_BUILD=no", env={"WEB_IMAGE": broken})
    text = output(deploy)
    assert deploy.returncode != 0
    assert "did not become ready" in text and "deliberately broken image" in text
    assert f"rolling back to {FIRST['second_release']}" in text
    assert host.current_release() == FIRST["second_release"]
    assert host.image_of("web") == web_before
    assert "result=failed, rolled back to" in host.sh("tail -n 1 flask-stack/deploys.log")
    signs_in(host, FIRST["username"])
    docker("image", "rm", "-f", broken, check=False)


def test_make_rollback_returns_to_the_previous_release(host: Host) -> None:
    rollback = host.make("rollback", f"HOST={host.url}")
    assert rollback.returncode == 0
    assert host.current_release() == FIRST["release"]
    assert host.image_of("web") == FIRST["web_image"]
    assert "result=rollback ok" in host.sh("tail -n 1 flask-stack/deploys.log")
    signs_in(host, FIRST["username"])
    status = host.make("status", f"HOST={host.url}")
    assert status.returncode == 0
    assert f"release: {FIRST['release']}" in status.stdout
    assert f"previous: {FIRST['second_release']}" in status.stdout


def test_data_and_secrets_are_kept_across_down_and_a_new_deploy(host: Host) -> None:
    down = host.make("down", f"HOST={host.url}")
    assert down.returncode == 0
    assert host.containers("web") == [] and host.containers("db") == []
    deploy = host.make("deploy", f"HOST={host.url}")
    assert deploy.returncode == 0
    host.trust_its_certificate(Path(host.http.tmp))
    signs_in(host, FIRST["username"])  # the account (PostgreSQL's volume) is still there
    secret_key = host.in_service("web", "cat /run/secrets/app/secret_key").strip()
    assert secret_key == FIRST["secret_key"]  # not regenerated
    assert f"{TEST_PASSWORD}" not in host.sh("cat flask-stack/deploys.log")

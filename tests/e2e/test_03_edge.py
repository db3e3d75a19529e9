"""What nginx adds: HTTPS redirect, security headers, static files, limits, client address."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .conftest import Stack

pytestmark = pytest.mark.e2e

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=()",
}


def assert_security_headers(resp: requests.Response) -> None:
    """Every security header is present, once, with the expected value."""
    for name, expected in SECURITY_HEADERS.items():
        values = resp.raw.headers.getlist(name)
        assert len(values) == 1, f"{name} on {resp.url} ({resp.status_code}): {values}"
        assert expected in values[0], f"{name}: {values[0]}"


def test_http_redirects_to_https_on_the_configured_name(
    stack: Stack, client: requests.Session
) -> None:
    # SERVER_NAME is localhost here: the client's own Host (127.0.0.1, or a forged one) is
    # never where the redirect sends it.
    for host in (None, "evil.example"):
        resp = client.get(
            f"http://127.0.0.1:{stack.http_port}/login?next=%2Fdashboard",
            headers={"Host": host} if host else {},
            allow_redirects=False,
            timeout=10,
        )
        assert resp.status_code in (301, 308)
        location = f"https://localhost:{stack.https_port}/login?next=%2Fdashboard"
        assert resp.headers["Location"] == location


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/login", 200),
        ("/no-such-page", 404),
        ("/static/css/site.css", 200),
        ("/static/missing.css", 404),
        ("/custom-status", 418),
    ],
)
def test_security_headers_on_every_response(
    stack: Stack, client: requests.Session, path: str, status: int
) -> None:
    resp = client.get(stack.base_url + path, timeout=10)
    assert resp.status_code == status
    assert_security_headers(resp)


def test_static_files_come_from_nginx_with_caching(stack: Stack, client: requests.Session) -> None:
    resp = client.get(stack.base_url + "/static/css/site.css", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/css")
    assert "max-age=" in resp.headers["Cache-Control"]
    assert "X-Served-By" not in resp.headers  # gunicorn never saw it
    revalidated = client.get(resp.url, headers={"If-None-Match": resp.headers["ETag"]}, timeout=10)
    assert revalidated.status_code == 304


def test_large_body_is_refused_by_nginx(stack: Stack, client: requests.Session) -> None:
    resp = client.post(stack.base_url + "/login", data=b"x" * (2 * 1024 * 1024), timeout=30)
    assert resp.status_code == 413
    assert "X-Served-By" not in resp.headers  # refused before reaching the app
    assert "413" in resp.text
    assert_security_headers(resp)


def test_request_info_shows_the_real_client_not_a_forged_one(
    stack: Stack, client: requests.Session
) -> None:
    resp = client.get(
        stack.base_url + "/request-info",
        headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example"},
        timeout=10,
    )
    assert resp.status_code == 200
    info = resp.json()
    assert info["url"].startswith(stack.base_url + "/request-info")  # https, host and port kept
    assert info["remote_addr"] != "6.6.6.6"
    [nginx] = stack.container_ids("nginx")
    networks = json.loads(
        subprocess.run(
            ["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", nginx],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    nginx_ips = {n["IPAddress"] for n in networks.values()}
    gateways = {n["Gateway"] for n in networks.values()}
    assert info["remote_addr"] not in nginx_ips
    # Through docker's port publishing the client is 127.0.0.1 or the network's gateway.
    assert info["remote_addr"] in gateways | {"127.0.0.1"}


def test_auth_forms_are_rate_limited_by_nginx(stack: Stack) -> None:
    # 10 r/s; up to 40 more at once are queued (paced to 10/s), the rest refused: 60 at
    # once must see 429s from nginx itself.
    def get(_: int) -> requests.Response:
        with stack.session() as client:
            return client.get(stack.base_url + "/login", timeout=30)

    with ThreadPoolExecutor(60) as pool:
        responses = list(pool.map(get, range(60)))
    assert any(r.status_code == 200 for r in responses)
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "no request was limited"
    # nginx's own page, not the app's limiter: the app never saw these requests.
    assert all("X-Served-By" not in r.headers for r in refused)
    assert_security_headers(refused[0])


def test_request_id_ties_the_response_to_both_access_logs(
    stack: Stack, client: requests.Session
) -> None:
    resp = client.get(stack.base_url + "/healthz", timeout=10)
    request_id = resp.headers["X-Request-ID"]
    assert len(request_id) == 32
    # In the JSON lines of both (LOG_FORMAT=json; test_11_monitoring.py checks their fields).
    assert f'"request_id":"{request_id}"' in stack.compose("logs", "--no-color", "nginx")
    assert f'"request_id": "{request_id}"' in stack.compose("logs", "--no-color", "web")


def test_trusted_proxies_become_realip_directives_the_real_nginx_accepts(stack: Stack) -> None:
    # The image's entrypoint renders the templates and runs nginx/25-real-ip.sh before
    # `nginx -T` (test, then print the whole configuration).
    run = ("run", "--rm", "--no-deps", "-T")
    shown = stack.compose(
        *run, "-e", "TRUSTED_PROXIES=10.0.0.0/8, fd00::/8", "nginx", "nginx", "-T"
    )
    assert "set_real_ip_from 10.0.0.0/8;" in shown
    assert "set_real_ip_from fd00::/8;" in shown
    assert "real_ip_header X-Forwarded-For;" in shown and "real_ip_recursive on;" in shown
    # The running stack trusts no front proxy: nothing but the comment was rendered.
    assert "set_real_ip_from" not in stack.exec("nginx", "cat /etc/nginx/conf.d/real-ip.conf")
    with pytest.raises(AssertionError, match="is not an IP address or CIDR"):
        stack.compose(*run, "-e", "TRUSTED_PROXIES=0.0.0.0/0;", "nginx", "nginx", "-t")


NEIGHBOUR_PROBE = """
import json, socket, urllib.request
request = urllib.request.Request(
    "http://web:8000/request-info",
    headers={"Host": "localhost", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"},
)
info = json.load(urllib.request.urlopen(request, timeout=5))
print(info["remote_addr"] == "6.6.6.6", info["url"].startswith("http://"))
"""
REACH_PROBE = """
import socket
try:
    socket.create_connection(("web", 8000), timeout=3).close()
    print("reached")
except OSError:
    print("unreachable")
"""


def test_a_container_next_to_web_cannot_pose_as_the_client(stack: Stack) -> None:
    # housekeeping shares `back` with web: it reaches gunicorn, but its forwarded headers
    # are dropped (only nginx's count): neither the address nor the scheme it claims.
    assert stack.exec("housekeeping", f"python -c '{NEIGHBOUR_PROBE}'").split() == [
        "False", "True"
    ]  # fmt: skip
    # acme shares `front` with nginx only: web is not even a name there.
    assert stack.exec("acme", f"python3 -c '{REACH_PROBE}'").strip() == "unreachable"

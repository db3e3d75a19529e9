"""Automatic certificates, offline: Pebble (an ACME test CA) issues and renews for nginx.

Its own stack (tests/e2e/compose.acme.yml on top of the usual files) with SERVER_NAME a
public-looking test name and ACME_EMAIL set. The stack comes up with the CA still absent
(nginx serves its self-signed certificate), then the CA starts and the acme service gets a
certificate on its next try; a forced renewal is then served under signed-in traffic.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from requests.adapters import HTTPAdapter

from .conftest import Stack, isolated_env
from .traffic import Traffic

pytestmark = pytest.mark.e2e

NAME = "shop.example.test"  # a public name by acme/acme_config.py's rule; Pebble validates it
COMPOSE_ACME = Path(__file__).with_name("compose.acme.yml")
ISSUE_TIMEOUT = 120  # seconds: certbot's start, an order and an HTTP-01 validation


class ServerNameAdapter(HTTPAdapter):
    """Connect to 127.0.0.1 but send and verify NAME (SNI and certificate), as a browser would."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = NAME
        super().init_poolmanager(*args, **kwargs)


class AcmeStack(Stack):
    """The usual stack plus Pebble; its clients trust Pebble's root and expect NAME."""

    def compose_command(self) -> list[str]:
        return [*super().compose_command(), "-f", str(COMPOSE_ACME)]

    def session(self) -> requests.Session:
        client = super().session()
        client.mount("https://", ServerNameAdapter())
        return client


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until condition() returns something truthy; return it or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def served_certificate(stack: Stack, cafile: str | None = None) -> x509.Certificate:
    """Return the certificate nginx serves for NAME.

    With cafile (a root only), the handshake verifies the name and the chain: it succeeds
    only if nginx also sends the intermediate, i.e. serves the full chain.
    """
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
    else:  # only to look at what is served (the self-signed certificate, say)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=NAME) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der)


def acme_logs(stack: Stack) -> str:
    return stack.compose("logs", "--no-color", "acme", check=False)


@pytest.fixture(scope="module")
def acme_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeStack]:
    """Start the stack without its CA; tear everything down (volumes too) at the end."""
    tmp = tmp_path_factory.mktemp("acme")
    (tmp / "empty.env").write_text("")
    project = f"e2eacme{secrets.token_hex(3)}"
    env = isolated_env(
        WEB_IMAGE=f"flask-stack-web:{project}",
        PEBBLE_IMAGE=f"flask-stack-pebble:{project}",
        WEB_CONCURRENCY="2",
        SERVER_NAME=NAME,
        ACME_EMAIL="ops@shop.example.test",
        ACME_DIRECTORY="https://pebble:14000/dir",
    )
    stack = AcmeStack(project, env, int(env["HTTPS_PORT"]), int(env["HTTP_PORT"]), tmp)
    try:
        try:
            stack.up("nginx", "acme", build=True)  # everything but the CA
        except BaseException:
            print(stack.compose("logs", "--no-color", "--tail", "60", check=False))
            raise
        yield stack
    finally:
        print(stack.compose("logs", "--no-color", "--tail", "60", "acme", "nginx", check=False))
        stack.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=180)
        images = [env["WEB_IMAGE"], env["PEBBLE_IMAGE"]]
        images += [f"{project}-{service}" for service in ("nginx", "secrets", "acme")]
        subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True, check=False)


@pytest.fixture(scope="module")
def pebble_root(acme_stack: AcmeStack) -> str:
    """Start the CA; wait for the acme service's next try to get a certificate served.

    Returns the path of Pebble's root certificate (a new one on every Pebble start), read
    from its management API; the stack's clients trust it from then on.
    """
    acme_stack.up("--no-deps", "pebble", "challtestsrv", build=True)

    def root() -> str:
        try:
            return acme_stack.exec(
                "pebble",
                "curl -fsS --cacert /pebble-ca/listener.pem https://localhost:15000/roots/0",
            )
        except AssertionError:
            return ""  # Pebble is still starting

    path = acme_stack.tmp / "pebble-root.pem"
    path.write_text(wait_for(root, 30, "Pebble's management API"))
    acme_stack.ca_file = str(path)

    def issued() -> bool:
        try:
            return bool(served_certificate(acme_stack, str(path)))
        except ssl.SSLCertVerificationError:
            return False  # still the self-signed one

    wait_for(issued, ISSUE_TIMEOUT, "nginx to serve a certificate from Pebble")
    return str(path)


def test_https_is_served_before_the_first_certificate(acme_stack: AcmeStack) -> None:
    # The CA is not running yet: the stack is up and healthy all the same, on the
    # self-signed certificate, and the acme service is waiting for its next try.
    leaf = served_certificate(acme_stack)
    assert leaf.issuer == leaf.subject  # self-signed
    assert NAME in leaf.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.DNSName)
    wait_for(lambda: "next try in 3s" in acme_logs(acme_stack), 60, "a failed first try")


def test_nginx_serves_the_certificate_and_chain_from_the_ca(
    acme_stack: AcmeStack, pebble_root: str
) -> None:
    leaf = served_certificate(acme_stack, pebble_root)  # verifies the full chain and the name
    assert "Pebble" in leaf.issuer.rfc4514_string()
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [NAME]
    with acme_stack.session() as client:  # the app itself, over the verified connection
        resp = client.get(acme_stack.base_url + "/login", timeout=10)
    assert resp.status_code == 200


def test_port_80_answers_challenges_and_redirects_everything_else(
    acme_stack: AcmeStack, pebble_root: str
) -> None:
    token = secrets.token_urlsafe(16)
    acme_stack.exec(
        "acme",
        f"mkdir -p /var/www/acme/.well-known/acme-challenge && "
        f"echo {token}.thumbprint > /var/www/acme/.well-known/acme-challenge/{token}",
    )
    base = f"http://127.0.0.1:{acme_stack.http_port}"
    headers = {"Host": NAME}
    try:
        found = requests.get(
            f"{base}/.well-known/acme-challenge/{token}", headers=headers, timeout=10
        )
        assert (found.status_code, found.text) == (200, f"{token}.thumbprint\n")
        missing = requests.get(
            f"{base}/.well-known/acme-challenge/nope", headers=headers, timeout=10
        )
        assert missing.status_code == 404  # not a redirect to https
        other = requests.get(f"{base}/login", headers=headers, allow_redirects=False, timeout=10)
        assert other.status_code == 301
        assert other.headers["Location"] == f"https://{NAME}:{acme_stack.https_port}/login"
    finally:
        acme_stack.exec("acme", f"rm -f /var/www/acme/.well-known/acme-challenge/{token}")


def test_a_restart_keeps_the_valid_certificate(acme_stack: AcmeStack, pebble_root: str) -> None:
    before = served_certificate(acme_stack, pebble_root).serial_number
    archive = "ls /etc/letsencrypt/archive/" + NAME
    held = acme_stack.exec("acme", archive).split()
    acme_stack.compose("restart", "acme")
    wait_for(
        lambda: acme_logs(acme_stack).count("not yet due for renewal") >= 1,
        60,
        "certbot to keep the certificate",
    )
    assert acme_stack.exec("acme", archive).split() == held  # nothing new from the CA
    assert served_certificate(acme_stack, pebble_root).serial_number == before


def test_a_renewal_is_served_without_a_failed_request(
    acme_stack: AcmeStack, pebble_root: str
) -> None:
    nginx = acme_stack.running("nginx")
    [container] = nginx
    started = acme_stack.inspect(container)["State"]["StartedAt"]
    before = served_certificate(acme_stack, pebble_root).serial_number
    with Traffic(acme_stack, clients=4) as tally:
        acme_stack.compose(
            "exec", "-T", "acme", "acme-renew", "--force-renewal", timeout=ISSUE_TIMEOUT
        )
        renewed = wait_for(
            lambda: served_certificate(acme_stack, pebble_root).serial_number != before,
            60,
            "nginx to serve the renewed certificate",
        )
    print(tally.summary("renewal under traffic"))
    assert renewed
    assert tally.requests > 20
    assert not tally.failures, tally.summary("renewal under traffic")
    # A reload, not a restart: the same container and master process kept running.
    assert acme_stack.running("nginx") == nginx
    assert acme_stack.inspect(container)["State"]["StartedAt"] == started
    logs = acme_stack.compose("logs", "--no-color", "nginx")
    assert "cert-watch: /etc/nginx/tls/tls.crt changed; nginx reloaded (graceful)" in logs


def test_another_directory_replaces_the_certificate_at_once(
    acme_stack: AcmeStack, pebble_root: str
) -> None:
    # As when ACME_STAGING=true is turned off: the certificate held is valid, but from the
    # other directory. (Pebble ignores the query string: a new URL for the same test CA.)
    before = served_certificate(acme_stack, pebble_root).serial_number
    acme_stack.env["ACME_DIRECTORY"] = "https://pebble:14000/dir?production"
    acme_stack.up("--no-deps", "acme")  # recreated with the new setting, as `make up` does
    wait_for(lambda: "is from another CA" in acme_logs(acme_stack), 60, "the directory change")
    wait_for(
        lambda: served_certificate(acme_stack, pebble_root).serial_number != before,
        ISSUE_TIMEOUT,
        "nginx to serve the certificate from the new directory",
    )


def test_the_acme_service_has_no_docker_socket_and_no_privileges(acme_stack: AcmeStack) -> None:
    [container] = acme_stack.running("acme")
    info = acme_stack.inspect(container)
    assert not [m for m in info["Mounts"] if "docker.sock" in m.get("Source", "")]
    assert info["HostConfig"]["CapDrop"] == ["ALL"] and not info["HostConfig"]["CapAdd"]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert "no-new-privileges:true" in info["HostConfig"]["SecurityOpt"]

"""End-to-end fixtures: one real `docker compose` stack per test session, driven over HTTPS.

The stack is built and started once (`up -d --build --wait`) under a unique project name,
published on free ports of 127.0.0.1 only, and removed with its volumes at the end, even
when a test or the start-up fails. Tests that change the stack (stop, scale, down/up) live
in test_09_lifecycle.py, which sorts last of those that share it (later files start stacks
of their own). Before a stack goes down, its logs are checked for the run's secrets.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_E2E = Path(__file__).with_name("compose.e2e.yml")  # test-only settings on top
UP_TIMEOUT = 600  # seconds: a cold build on 2 cores takes a few minutes at most
TEST_PASSWORD = "correct horse battery staple 42"
# Passwords the tests type (right and wrong ones): none may ever reach a log line.
TYPED_PASSWORDS = (TEST_PASSWORD, TEST_PASSWORD + " changed", "not the password at all")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MONITORING_IMAGES = (
    "prometheus",
    "nginx-exporter",
    "postgres-exporter",
    "redis-exporter",
    "blackbox-exporter",
    "alertmanager",
)
# The generated secrets, read from the containers before the stack goes down.
SECRET_FILES = {
    "web": "/run/secrets/app/secret_key /run/secrets/app/postgres_app_password"
    " /run/secrets/app/redis_password /run/secrets/app/redis_jobs_password"
    " /run/secrets/app/mfa_encryption_key",
    "redis": "/run/secrets/redis/admin_password /run/secrets/redis/probe_password",
    "housekeeping": "/run/secrets/app/postgres_owner_password",
    # The exporters' logins (monitoring profile only).
    "postgres-exporter": "/run/secrets/monitor/postgres_password"
    " /run/secrets/monitor/redis_password",
}
# Secrets inside a file, read by a command: the backup repository's passphrase.
SECRET_COMMANDS = {
    "backup": {
        "backup_cipher_pass": "sed -n 's/^repo1-cipher-pass=//p'"
        " /run/secrets/backup/pgbackrest.conf"
    },
}


def stack_variables() -> set[str]:
    """Return the names of the settings compose reads (listed in .env.example)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^# ([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def isolated_env(**settings: str) -> dict[str, str]:
    """Return the environment of a throwaway stack: free ports on 127.0.0.1, `settings`, and
    nothing of the stack's settings from a developer's shell (or .env)."""
    inherited = {k: v for k, v in os.environ.items() if k not in stack_variables()}
    ports = {"HTTP_PORT": str(free_port()), "HTTPS_PORT": str(free_port())}
    return {**inherited, "BIND_ADDRESS": "127.0.0.1", **ports, **settings}


@dataclass
class Stack:
    """A running compose project and helpers to drive and inspect it."""

    project: str
    env: dict[str, str]
    https_port: int
    http_port: int
    tmp: Path
    ca_file: str = ""
    profiles: tuple[str, ...] = ()
    # Cookie values and CSRF tokens the stack handed out: checked against the logs at the end.
    secrets: set[str] = field(default_factory=set, repr=False)
    # Logs and generated secrets of containers a test removed (`down`), for that same check.
    earlier_logs: list[str] = field(default_factory=list, repr=False)
    earlier_secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def down(self, *args: str) -> None:
        """`docker compose down`, keeping what it removes for the final secret check."""
        self.earlier_secrets.update(generated_secrets(self))
        self.earlier_logs.append(self.compose("logs", "--no-color", check=False, timeout=180))
        self.compose("down", *args, timeout=180)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def compose_command(self) -> list[str]:
        """Return the `docker compose` command line for this project."""
        cmd = ["docker", "compose", "-p", self.project, "--env-file", str(self.tmp / "empty.env")]
        cmd += [arg for profile in self.profiles for arg in ("--profile", profile)]
        return [*cmd, "-f", str(ROOT / "docker-compose.yml"), "-f", str(COMPOSE_E2E)]

    def compose(self, *args: str, check: bool = True, timeout: int = 120) -> str:
        """Run `docker compose` on this project and return its stdout."""
        proc = subprocess.run(
            [*self.compose_command(), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def make(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run a Makefile target against this project (its compose command); don't check."""
        return subprocess.run(
            ["make", *args],
            cwd=ROOT,
            # ENV_FILE: the targets that read .env themselves (deploy) read none either.
            env={
                **self.env,
                "COMPOSE": " ".join(self.compose_command()),
                "ENV_FILE": str(self.tmp / "empty.env"),
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def up(self, *args: str, build: bool = False) -> None:
        """Start (or converge) the stack and wait until every service is healthy."""
        extra = ["--build"] if build else []
        self.compose("up", "-d", *extra, "--wait", *args, timeout=UP_TIMEOUT)

    def exec(self, service: str, script: str) -> str:
        """Run a shell snippet inside a running service container and return stdout."""
        return self.compose("exec", "-T", service, "sh", "-c", script)

    def container_ids(self, service: str) -> list[str]:
        """Return the ids of the service's containers (running or exited)."""
        return self.compose("ps", "-a", "-q", service).split()

    def running(self, service: str) -> list[str]:
        """Return the ids of the service's running containers."""
        return self.compose("ps", "-q", service).split()

    def inspect(self, container: str) -> dict:
        """Return `docker inspect` of one container."""
        out = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out)[0]

    def redis(self, *args: str, user: str = "admin") -> str:
        """Run redis-cli in the redis container as `user` (default: admin, as make redis-cli)."""
        quoted = " ".join(f"'{a}'" for a in args)
        secret = f"/run/secrets/redis/{user}_password"
        return self.exec(
            "redis", f'REDISCLI_AUTH="$(cat {secret})" redis-cli --user {user} {quoted}'
        )

    def session(self) -> requests.Session:
        """Return an HTTP client that trusts the stack's own certificate (TLS is verified)."""
        client = requests.Session()
        # Ignore REQUESTS_CA_BUNDLE/proxies from the environment: with trust_env, requests
        # lets REQUESTS_CA_BUNDLE override session.verify (psf/requests#3829).
        client.trust_env = False
        client.verify = self.ca_file
        client.hooks["response"].append(self._remember_cookies)
        return client

    def _remember_cookies(self, response: requests.Response, *args: object, **kw: object) -> None:
        self.secrets.update(cookie.value for cookie in response.cookies if cookie.value)

    def csrf_token(self, client: requests.Session, path: str) -> str:
        """GET a form page and return the hidden csrf_token it holds."""
        page = client.get(self.base_url + path, timeout=10)
        assert page.status_code == 200, page.text
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page.text
        )
        assert match, f"no csrf_token on {path}"
        self.secrets.add(match.group(1))
        return match.group(1)

    def post_form(self, client: requests.Session, path: str, data: dict) -> requests.Response:
        """POST a form the way a browser does: token from the page, same-origin Referer."""
        data = {**data, "csrf_token": self.csrf_token(client, path)}
        return client.post(
            self.base_url + path,
            data=data,
            headers={"Referer": self.base_url + path},
            timeout=30,
        )

    def register(self, client: requests.Session, username: str) -> None:
        """Create an account through nginx."""
        form = {"username": username, "password": TEST_PASSWORD, "confirm": TEST_PASSWORD}
        form["email"] = f"{username}@example.com"
        resp = self.post_form(client, "/register", form)
        assert resp.status_code == 200 and "/login" in resp.url, resp.text[:500]

    def login(self, client: requests.Session, username: str, remember: bool = False) -> None:
        """Log in through nginx and land on the dashboard."""
        form = {"username": username, "password": TEST_PASSWORD}
        if remember:
            form["remember"] = "y"
        resp = self.post_form(client, "/login", form)
        assert resp.status_code == 200, resp.text[:500]
        assert f"Welcome {username}!" in resp.text


def new_username() -> str:
    """Return a username no other test uses."""
    return f"e2e_{secrets.token_hex(4)}"


def assert_no_secret_in_logs(stack: Stack, generated: dict[str, str]) -> None:
    """Fail if any service's log holds a password, cookie value, CSRF token or secret."""
    logs = "".join(stack.earlier_logs)
    logs += stack.compose("logs", "--no-color", check=False, timeout=180)
    assert len(logs) > 1000, "no logs to check"
    candidates = {
        **{f"typed password #{n}": p for n, p in enumerate(TYPED_PASSWORDS)},
        **{f"cookie or CSRF token #{n}": v for n, v in enumerate(sorted(stack.secrets))},
        **stack.earlier_secrets,
        **generated,
    }
    # Short values (a flag cookie such as "1") would match by chance; ours are long.
    leaked = [name for name, value in candidates.items() if len(value) >= 8 and value in logs]
    assert not leaked, f"secrets found in `docker compose logs`: {leaked}"  # names, not values


def generated_secrets(stack: Stack) -> dict[str, str]:
    """Return the stack's generated secrets by name (read before it goes down)."""
    reads = {
        service: {path: f"cat {path}" for path in files.split()}
        for service, files in SECRET_FILES.items()
    }
    for service, commands in SECRET_COMMANDS.items():
        reads.setdefault(service, {}).update(commands)
    found: dict[str, str] = {}
    for service, commands in reads.items():
        if not stack.compose("ps", "-q", service, check=False).split():
            continue  # not running, or not in this stack's profiles
        for name, command in commands.items():
            value = stack.exec(service, f"{command} 2>/dev/null || true").strip()
            if value:
                found[name] = value
    return found


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Build and start the real stack once; tear it down (with volumes) whatever happens."""
    with running_stack(tmp_path_factory, "e2e") as started:
        yield started


@contextmanager
def running_stack(
    tmp_path_factory: pytest.TempPathFactory,
    prefix: str,
    profiles: tuple[str, ...] = (),
    **settings: str,
) -> Iterator[Stack]:
    """Start a stack (with compose `profiles` and .env-like `settings`); on exit, check its
    logs hold no secret and remove it with its volumes and images, whatever happened."""
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "empty.env").write_text("")  # a developer's .env must not leak into the test
    project = f"{prefix}{secrets.token_hex(4)}"
    env = isolated_env(
        WEB_IMAGE=f"flask-stack-web:{project}",
        DB_IMAGE=f"flask-stack-db:{project}",
        BACKUP_IMAGE=f"flask-stack-backup:{project}",
        EXPOSE_SERVED_BY="1",
        WEB_CONCURRENCY="2",  # two workers per replica: enough here, and quick to boot
        PROMETHEUS_PORT=str(free_port()),  # used by the monitoring profile only
        ALERTMANAGER_PORT=str(free_port()),  # used by the monitoring profile only
        MAIL_UI_PORT=str(free_port()),  # used by the mail profile only
        **settings,
    )
    https_port, http_port = int(env["HTTPS_PORT"]), int(env["HTTP_PORT"])
    stack = Stack(project, env, https_port, http_port, tmp, profiles=profiles)
    try:
        try:
            stack.up(build=True)
        except BaseException:
            print(stack.compose("logs", "--no-color", "--tail", "60", check=False))
            raise
        ca = tmp / "stack-ca.pem"
        ca.write_text(stack.exec("nginx", "cat /etc/nginx/tls/tls.crt"))
        stack.ca_file = str(ca)
        yield stack
        # Every service's logs, collected before `down`: the run's secrets are in none.
        assert_no_secret_in_logs(stack, generated_secrets(stack))
    finally:
        # The last lines of each service, for a failure that only shows as a status code.
        print(stack.compose("logs", "--no-color", "--tail", "40", "web", check=False)[-6000:])
        stack.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=180)
        subprocess.run(
            [
                "docker",
                "image",
                "rm",
                "-f",
                env["WEB_IMAGE"],
                env["DB_IMAGE"],
                env["BACKUP_IMAGE"],
                f"{project}-nginx",
                f"{project}-secrets",
                f"{project}-acme",
                *(f"{project}-{name}" for name in MONITORING_IMAGES if profiles),
            ],
            capture_output=True,
            check=False,
        )


@pytest.fixture
def client(stack: Stack) -> Iterator[requests.Session]:
    """Return a fresh HTTPS client (its own cookie jar) for one test."""
    with stack.session() as session:
        yield session


@pytest.fixture(scope="session")
def mailed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own with the `mail` profile (MailDev), for the files that read mail."""
    # Short retry delays: an outage is outlasted in seconds, not minutes.
    retries = {"JOBS_RETRY_INTERVALS": "2,3,5,8,13"}
    with running_stack(tmp_path_factory, "mail", profiles=("mail",), **retries) as stack:
        yield stack


def mail_api(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['MAIL_UI_PORT']}"


def messages_to(stack: Stack, address: str) -> list[dict]:
    with requests.Session() as client:
        client.trust_env = False
        response = client.get(mail_api(stack) + "/email", timeout=10)
    response.raise_for_status()
    return [m for m in response.json() if any(t["address"] == address for t in m["to"])]


def wait_for_mail(stack: Stack, address: str, subject: str, timeout: float = 90) -> dict:
    """Wait until a message with `subject` in its subject reached `address`; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = [m for m in messages_to(stack, address) if subject in m["subject"]]
        except requests.ConnectionError:  # MailDev (re)starting
            found = []
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no {subject!r} mail for {address} within {timeout} s")


def link_path(stack: Stack, message: dict) -> str:
    """Return the path of the link in a message: it names the site as a browser reaches it
    (SERVER_NAME and HTTPS_PORT). Its token joins the run's secrets: no log line of any
    service may hold it."""
    site = f"https://localhost:{stack.https_port}"  # SERVER_NAME is localhost here
    match = re.search(re.escape(site) + r"(/\S+)", message["text"])
    assert match, message["text"]
    stack.secrets.add(match.group(1).rsplit("/", 1)[1])
    return match.group(1)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Start headless Chromium with flags that work offline and as root."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "Debian's chromium and chromium-driver are needed: make browser"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
        "--disable-dev-shm-usage", "--window-size=1100,900",
        # the stack's certificate is self-signed; everything else about TLS stays real
        "--ignore-certificate-errors",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def submit(driver, fields: dict[str, str], then_shows: str) -> None:
    """Type into the form's fields, click its submit button, wait for the next page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)
    button = driver.find_element(By.NAME, "submit")
    # Scrolled into view instantly first: typing scrolls the page smoothly (Simple.css), and
    # a click mid-scroll can land on another element (ElementClickInterceptedException).
    script = "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})"
    driver.execute_script(script, button)
    button.click()
    # click() does not wait for the navigation it starts: wait for the page that follows.
    WebDriverWait(driver, 15).until(lambda d: then_shows in d.page_source)

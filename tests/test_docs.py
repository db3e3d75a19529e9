"""What README.md, docs/ and .env.example promise is what the code does.

Each test reads the promise from the page and the fact from the code or configuration that
ships, so either one changing alone fails here: the documented defaults against the real
ones, the `make` commands against the Makefile, the shipped limits and lifetimes, and the
sentences that once drifted (issue 32).
"""

from __future__ import annotations

import importlib.util
import re
import runpy
from pathlib import Path
from typing import Any

import pytest
import remote
import schedule
import yaml
from app.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def page(name: str) -> str:
    """Return a page with its line breaks and indentation folded into single spaces."""
    return " ".join((ROOT / name).read_text().split())


def init_secrets() -> Any:
    spec = importlib.util.spec_from_file_location("init_secrets", ROOT / "web/init-secrets.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- .env.example: every shown value is the real default ----------------------------------


def documented_defaults() -> list[tuple[str, str]]:
    """Return every `# NAME=value` line of .env.example (the value shown as the default)."""
    return re.findall(r"^# ([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M)


def as_text(value: Any) -> str:
    if value is None:  # a secret: generated, or none
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def real_default(name: str) -> str | None:
    """Return what runs when .env leaves `name` out: compose's `${NAME:-default}` when it
    gives one, else the default of the code that reads it (the app, the backup schedule,
    the deploy program)."""
    if name.startswith("COMPOSE_"):
        return ""  # docker compose's own settings: unset unless .env sets them
    given = set(re.findall(r"\$\{" + name + r":-([^}]*)\}", COMPOSE))
    assert len(given) <= 1, f"{name}: compose gives several defaults {sorted(given)}"
    if given and given != {""}:
        return given.pop()
    app = load_config({})
    if name in app:
        return as_text(app[name])
    if name in remote.DEFAULTS:  # the deploy program's (make deploy HOST=...)
        return remote.DEFAULTS[name]
    if name in {variable for variable, _ in schedule.DEFAULTS.values()}:
        return next(default for variable, default in schedule.DEFAULTS.values() if variable == name)
    return "" if given else None


def test_env_example_lists_each_variable_once():
    names = [name for name, _ in documented_defaults()]
    assert len(names) > 80
    assert sorted({n for n in names if names.count(n) > 1}) == []


@pytest.mark.parametrize(("name", "shown"), documented_defaults())
def test_every_default_env_example_shows_is_the_real_one(name, shown):
    real = real_default(name)
    assert real is not None, f"{name}: neither compose nor the code reads it"
    assert shown == real, f".env.example shows {name}={shown!r}; the default is {real!r}"


def env_example_blocks() -> dict[str, str]:
    """Return each documented variable with the comment above it (up to a blank line)."""
    blocks: dict[str, str] = {}
    comment: list[str] = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.match(r"# ([A-Z][A-Z0-9_]*)=", line):
            blocks[match[1]] = " ".join(comment)
        elif line.startswith("#"):
            comment.append(line.lstrip("# "))
        else:
            comment = []
    return blocks


def other_target_defaults() -> dict[str, set[str]]:
    """Return `${NAME:-default}` defaults the Swarm stack and the Kubernetes settings give."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "deploy/swarm/stack.yml", ROOT / "deploy/targets.yml"):
        for name, default in re.findall(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}", path.read_text()):
            found.setdefault(name, set()).add(default)
    # A fixed value Kubernetes sets instead of compose's (PROXY_FIX_TRUSTED: nginx-peers).
    kubernetes = yaml.safe_load((ROOT / "deploy/targets.yml").read_text())["kubernetes"]
    for name, value in kubernetes["environment"].items():
        if isinstance(value, str) and "${" not in value:
            found.setdefault(name, set()).add(value)
    return found


@pytest.mark.parametrize("name", sorted(env_example_blocks()))
def test_a_default_that_differs_on_swarm_or_kubernetes_is_said_beside_it(name):
    # "The same .env configures all three": where a target's default is not compose's,
    # .env.example says so next to the variable.
    compose_default = real_default(name)
    block = env_example_blocks()[name]
    for default in sorted(other_target_defaults().get(name, set()) - {compose_default, ""}):
        assert default in block, f".env.example: {name} defaults to {default!r} on Swarm or K8s"


# ---- every `make X` the docs name exists ------------------------------------------------


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z0-9_-]+):", (ROOT / "Makefile").read_text(), re.M))


def documented_make_commands() -> list[tuple[str, str]]:
    """Return (page, target) for each `make X` in a code span or a code block."""
    found = []
    for path in DOCS:
        text = path.read_text()
        code = re.findall(r"```.*?```", text, re.S) + re.findall(r"`[^`\n]+`", text)
        for snippet in code:
            for target in re.findall(r"(?:^|[\s`;&(])make ([a-z][a-z0-9-]*)", snippet, re.M):
                found.append((path.name, target))
    return sorted(set(found))


def test_the_docs_name_make_commands_at_all():
    assert len(documented_make_commands()) > 30


@pytest.mark.parametrize(("page_name", "target"), documented_make_commands())
def test_every_make_command_the_docs_name_is_a_makefile_target(page_name, target):
    assert target in makefile_targets(), f"{page_name} names `make {target}`"


# ---- the shipped defaults, and what the docs say of them --------------------------------

APP = load_config({})
SHIPPED = [
    # (setting, its shipped value, where the docs say it, how they say it)
    ("SESSION_IDLE_TIMEOUT", 1800, "docs/sessions.md", "`SESSION_IDLE_TIMEOUT` (30 min)"),
    ("SESSION_ABSOLUTE_TIMEOUT", 43200, "docs/sessions.md", "`SESSION_ABSOLUTE_TIMEOUT` (12 h)"),
    ("SESSION_TOUCH_INTERVAL", 60, "docs/sessions.md", "`SESSION_TOUCH_INTERVAL` (60 s)"),
    ("RATELIMIT_LOGIN", "10/minute;100/hour", "docs/sessions.md", "login `10/minute;100/hour`"),
    ("RATELIMIT_REGISTER", "5/minute;30/hour", "docs/sessions.md", "register `5/minute;30/hour`"),
    (
        "RATELIMIT_ACCOUNT_ADDRESS_FAILURES",
        "5/5 minutes;20/hour",
        "docs/sessions.md",
        "strictly (`5/5 minutes;20/hour`)",
    ),
    (
        "RATELIMIT_ACCOUNT_FAILURES",
        "10/15 minutes;30/hour;100/day",
        "docs/sessions.md",
        "(`10/15 minutes;30/hour;100/day`: a botnet guesses at most 100 a day",
    ),
    ("RATELIMIT_FORGOT", "5/minute;20/hour", ".env.example", "# RATELIMIT_FORGOT=5/minute;20/hour"),
    (
        "RATELIMIT_FORGOT_EMAIL",
        "3/hour;10/day",
        ".env.example",
        "# RATELIMIT_FORGOT_EMAIL=3/hour;10/day",
    ),
    ("REMEMBER_RESTORE_LIMIT", "10/hour", ".env.example", "# REMEMBER_RESTORE_LIMIT=10/hour"),
    ("EMAIL_VERIFY_MAX_AGE", 86400, "README.md", "verify the address (24 h, once)"),
    ("EMAIL_VERIFY_MAX_AGE", 86400, "docs/sessions.md", "`EMAIL_VERIFY_MAX_AGE` 24 h"),
    ("PASSWORD_RESET_MAX_AGE", 1800, "README.md", "from the mailed link (30 min, works once"),
    ("PASSWORD_RESET_MAX_AGE", 1800, "docs/sessions.md", "`PASSWORD_RESET_MAX_AGE` 30 min"),
]


@pytest.mark.parametrize(("name", "value", "doc", "said"), SHIPPED)
def test_a_shipped_default_is_what_the_docs_say(name, value, doc, said):
    assert APP[name] == value, f"{name}: the app ships {APP[name]!r}"
    assert real_default(name) == as_text(value), f"{name}: compose overrides the app's default"
    assert said in page(doc), f"{doc} no longer says {said!r}"


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        # The most a lost database disk costs: WAL is archived at least this often.
        ("BACKUP_ARCHIVE_TIMEOUT", "60", "`BACKUP_ARCHIVE_TIMEOUT` (60) seconds after a write"),
        ("BACKUP_RETENTION_FULL", "2", "`BACKUP_RETENTION_FULL` (2 fulls)"),
        ("BACKUP_RETENTION_DIFF", "6", "`BACKUP_RETENTION_DIFF` (6 differentials)"),
    ],
)
def test_the_shipped_backup_bounds_are_what_operations_says(name, value, said):
    assert real_default(name) == value
    assert said in page("docs/operations.md")


def test_the_archive_bound_reaches_postgresql():
    db = yaml.safe_load(COMPOSE)["services"]["db"]["command"]
    assert "archive_timeout=${BACKUP_ARCHIVE_TIMEOUT:-60}" in db
    assert "archive_mode=on" in db


def test_gunicorn_sizes_workers_as_deploying_says():
    default_workers = runpy.run_path(str(ROOT / "web" / "gunicorn.conf.py"))["default_workers"]
    assert [default_workers(cpus) for cpus in (1, 2, 3, 4, 64)] == [3, 5, 7, 8, 8]
    assert "**2 \N{MULTIPLICATION SIGN} CPUs + 1, at most 8**" in page("docs/deploying.md")
    assert "threads (4)" in page("docs/deploying.md")
    assert real_default("GUNICORN_THREADS") == "4"


# ---- sentences that once said something else -------------------------------------------


def test_development_names_what_make_test_downloads():
    # `make test` fetches more than Python packages: each prerequisite of the target is a
    # tool the page must name, with where it comes from.
    makefile = (ROOT / "Makefile").read_text()
    [prerequisites] = re.findall(r"^test: (.*?) ##", makefile, re.M)
    says = {
        "$(STAMP)": ["virtualenv"],
        "$(BIN)/promtool": ["promtool", "apt-get download", "Debian"],
        "$(BIN)/amtool": ["amtool", "prometheus-alertmanager"],
        "$(KUBECTL_BIN)": ["kubectl", "npm", "amd64"],
        "$(CHECKOV_STAMP)": ["checkov"],
    }
    [row] = [line for line in (ROOT / "docs/development.md").read_text().splitlines()
             if line.startswith("| `make test` |")]  # fmt: skip
    for prerequisite in prerequisites.split():
        assert prerequisite in says, f"make test needs {prerequisite}: say so in development.md"
        for word in says[prerequisite]:
            assert word in row, f"development.md's make test row does not say {word!r}"


def test_monitoring_names_every_key_the_redis_exporter_may_read():
    rules = init_secrets().REDIS_USERS["monitor"][1]
    keys = re.findall(r"~(\S+)", rules)
    assert keys, "the monitor user reads no key: say so in docs/monitoring.md"
    [row] = [line for line in (ROOT / "docs/monitoring.md").read_text().splitlines()
             if line.startswith("| `redis-exporter` |")]  # fmt: skip
    for key in keys:
        assert f"`{key}`" in row, key
    assert "no key," not in row


def test_sessions_quotes_the_csp_nginx_sends():
    template = (ROOT / "nginx/templates/security-headers.inc.template").read_text()
    [csp] = re.findall(r'Content-Security-Policy "([^"]+)"', template)
    assert f"(`{csp}`)" in page("docs/sessions.md")


# What each key family the app's Redis users may write holds, in operations.md's words.
REDIS_DATA = {
    "session:*": "the signed-in sessions",
    "user-sessions:*": "the signed-in sessions",
    "LIMITS:*": "the rate-limit and failure-budget counters",
    "rq:*": "the mail queue",
}


def test_operations_says_what_losing_redis_loses():
    users = init_secrets().REDIS_USERS
    patterns = {key for user in ("app", "jobs") for key in re.findall(r"~(\S+)", users[user][1])}
    text = page("docs/operations.md")
    for pattern in sorted(patterns):
        assert pattern in REDIS_DATA, f"Redis holds {pattern} too: say what losing it loses"
        assert REDIS_DATA[pattern] in text, pattern
    assert "dead-letter list" in text
    assert "holds sessions only" not in text
    # Said there once; the services table links it instead of listing it again.
    assert "operations.md#what-redis-holds" in page("docs/architecture.md")


# ---- one thing, said once -----------------------------------------------------------------


def test_how_often_nginx_re_resolves_web_is_said_once_as_upstream_conf_sets_it():
    [valid] = re.findall(r"resolver \S+ valid=(\d+)s", (ROOT / "nginx/upstream.conf").read_text())
    assert valid == "1"
    assert "about every 2 s (`resolver ... valid=1s`" in page("docs/architecture.md")
    for path in DOCS:
        if path.name != "architecture.md":
            text = " ".join(path.read_text().split())
            assert not re.search(r"re-(resolves|reads)[^.]*every", text), path.name


def test_development_names_every_tool_make_lint_runs():
    makefile = (ROOT / "Makefile").read_text()
    [recipe] = re.findall(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    tools = set(re.findall(r"\$\(BIN\)/([\w-]+)", recipe))
    assert tools == {"ruff", "mypy", "shellcheck"}
    [row] = [line for line in (ROOT / "docs/development.md").read_text().splitlines()
             if line.startswith("| `make lint` |")]  # fmt: skip
    for tool in tools:
        assert tool in row, tool

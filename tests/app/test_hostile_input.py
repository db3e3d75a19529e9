"""Hostile input, anywhere the app reads it, never reaches a 5xx (property-based + a corpus).

Every route (path variables included) is tried signed out and signed in, by GET and by POST,
with one hostile value put everywhere at once: every form field the app knows, the query
(`next`, duplicates), the path segments, the preference cookies and the headers it reads.
Some requests carry a valid CSRF token, so the forms' own validation is reached too.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from app.extensions import db
from app.models import AuthEvent, Person, User
from helpers import PASSWORD, Auth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = (
    "username", "password", "confirm", "current_password", "new_password", "remember",
    "name", "email", "notes", "theme", "language", "submit", "next", "code", "credential",
)  # fmt: skip
CORPUS = [
    "\x00",
    "a\x00b",
    "".join(map(chr, range(1, 32))) + "\x7f",
    "\x80\x85\x9f",  # C1 controls
    "x" * 10_000,
    "\ufdfa" * 6,  # one character, 18 after NFKC
    "\u202eevil\u202c",  # right-to-left override
    "a\u200bb\u200d",  # zero-width space and joiner
    "\U0001f600" * 20,
    "\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic digits: isdigit(), not ASCII
    "\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth digits
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    '"><script>alert(1)</script>',
    "{{ 7 * 7 }}",
    "javascript:alert(1)",
    "\r\nSet-Cookie: injected=1",
    "/\\evil.example/%0d%0a",
    "//evil.example",
    "../../etc/passwd",
    "%00%ff%fe%ed%a0%80",  # stays literal where it is not decoded
    "",
    " ",
]
# Raw, percent-encoded bytes that are not UTF-8 (lone surrogates, stray continuation bytes).
VARIABLE = re.compile(r"<[^>]+>")  # a rule's <converter:name>
RAW_PATH_SEGMENTS = ["%ff%fe", "%ed%a0%80", "%c0%af", "%e2%82", "%00"]


def header_value(value: str) -> str:
    """Return `value` as a header can carry it: no CR/LF (HTTP cannot), UTF-8 bytes as latin-1."""
    flat = value.replace("\r", " ").replace("\n", " ")
    return flat.encode("utf-8", "surrogatepass").decode("latin-1")


def urls(app, segment: str) -> list[tuple[str, set[str]]]:
    """Return every route with `segment` (already URL-encoded) in each path variable."""
    return [
        (VARIABLE.sub(segment, rule.rule), set(rule.methods or ()) - {"HEAD", "OPTIONS"})
        for rule in app.url_map.iter_rules()
    ]


def attack(app, client, value: str, raw_segment: str | None = None) -> list[int]:
    """Send `value` everywhere to every route; return the statuses (5xx makes it fail)."""
    segment = raw_segment or quote(value, safe="")
    query = f"next={quote(value, safe='')}&next=/&q={quote(value, safe='')}"
    token = client.csrf_token("/preferences")
    header = header_value(value[:2000])
    client.set_cookie("theme", quote(value[:200]))
    client.set_cookie("lang", quote(value[:200]))
    statuses = []
    for path, methods in urls(app, segment):
        for method in sorted(methods):
            form = {field: value for field in FIELDS}
            if method == "POST" and len(statuses) % 2 == 0:
                form["csrf_token"] = token
            response = client.open(
                f"{path}?{query}",
                method=method,
                data=form if method == "POST" else None,
                headers={
                    "User-Agent": header,
                    "Accept-Language": header,
                    "Accept": header,
                    "Referer": "https://localhost/" + quote(value[:200]),
                },
            )
            assert response.status_code < 500, (method, path, repr(value[:60]))
            statuses.append(response.status_code)
    return statuses


@pytest.fixture
def signed_in(app, client):
    """A signed-in client that owns one person, and the counts of what is stored."""
    auth = Auth(client)
    auth.register("owner")
    auth.login("owner", PASSWORD)
    client.post_form("/people/new", {"name": "Ada", "email": "", "notes": ""})
    return client


def stored(app) -> tuple[int, int]:
    """Return how many users and people exist."""
    with app.app_context():
        return (
            db.session.scalar(db.select(db.func.count()).select_from(User)) or 0,
            db.session.scalar(db.select(db.func.count()).select_from(Person)) or 0,
        )


@pytest.mark.parametrize("value", CORPUS, ids=range(len(CORPUS)))
def test_the_corpus_gets_4xx_or_form_errors_and_changes_nothing(app, signed_in, make_client, value):
    before = stored(app)
    attack(app, make_client(), value)  # signed out
    attack(app, signed_in, value)  # signed in (and may log out or delete itself: 4xx or 3xx)
    users, people = stored(app)
    assert users <= before[0] and people <= before[1] + 1, "hostile input was stored"


@pytest.mark.parametrize("segment", RAW_PATH_SEGMENTS)
def test_undecodable_path_segments_are_4xx(app, make_client, segment):
    attack(app, make_client(), "x", raw_segment=segment)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_anywhere_never_reaches_a_5xx(app, make_client, value):
    attack(app, make_client(), value)


# ua-parser names this device with 128 characters ("<family> on <os>"): longer than the column.
SPIDER = f"{'A' * 50} the Spider{'a' * 50}/1 (Windows Phone 8.0)"
HOSTILE_HEADERS = [SPIDER, "x" * 10_000, "\u202eevil\u202c" * 40, "' OR 1=1 --"]


@pytest.mark.parametrize("user_agent", HOSTILE_HEADERS, ids=range(len(HOSTILE_HEADERS)))
@pytest.mark.parametrize("remember", [False, True])
def test_a_real_account_with_hostile_headers_logs_in_and_is_audited(
    app, make_client, user_agent, remember
):
    """The username is real, the headers are hostile: the path a fuzzer of one value misses."""
    Auth(make_client()).register("alice")
    browser = make_client(header_value(user_agent))
    assert Auth(browser).login("alice", "wrong password").status_code == 401
    assert Auth(browser).login("alice", remember=remember).status_code == 302
    assert browser.get("/account").status_code == 200
    with app.app_context():
        events = db.session.scalars(db.select(AuthEvent).order_by(AuthEvent.id)).all()
    assert [e.event for e in events] == ["login_failed", "login"]
    assert all(len(e.device or "") <= 120 for e in events)

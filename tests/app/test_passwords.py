"""Password rules after NIST SP 800-63B / OWASP ASVS 5."""

from __future__ import annotations

import pytest
from app.passwords import common_passwords, password_problem


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("seven77", "at least 8 characters"),
        ("x" * 73, "at most 72 bytes"),
        ("ü" * 37, "at most 72 bytes"),  # 37 characters, 74 bytes
        ("password", "too common"),
        ("PASSWORD", "too common"),
        ("iloveyou", "too common"),
    ],
)
def test_refused_passwords(password, problem):
    assert problem in password_problem(password)


@pytest.mark.parametrize(
    "password", ["abcdefgh-unlikely", "x" * 72, "ü" * 36, "only lowercase words here", "😀" * 18]
)
def test_accepted_passwords_need_no_composition_rules(password):
    assert password_problem(password) is None


def test_the_shipped_list_is_big_and_local():
    assert len(common_passwords()) >= 9000

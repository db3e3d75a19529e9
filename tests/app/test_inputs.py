"""Input PostgreSQL cannot take answers a 4xx that says why, never a 500."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/login", {"username": "al\x00ice", "password": "x"}),
        ("post", "/register", {"username": "bo\x00b", "password": "p", "confirm": "p"}),
        ("get", "/user/al%00ice", None),
        ("get", "/?q=%00", None),
    ],
)
def test_a_nul_character_anywhere_is_a_400_that_says_so(client, method, path, data):
    response = client.post_form(path, data) if method == "post" else client.get(path)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)


def test_a_username_that_normalisation_expands_is_a_form_error(client, auth, app):
    response = auth.register(username="\ufdfa" * 6)  # each expands to 18 characters
    assert response.status_code == 422
    assert "too long once normalised" in response.get_data(as_text=True)

"""Pages shown to a signed-in user are never stored by a browser or a shared cache."""

from __future__ import annotations


def test_signed_in_pages_send_cache_control_no_store(client, auth):
    auth.register()
    auth.login()
    for path in ("/dashboard", "/account", "/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path


def test_anonymous_pages_keep_their_caching(client):
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")

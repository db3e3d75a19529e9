"""Theme and language live in cookies, not in the session, and every page honours them."""

from __future__ import annotations


def test_saving_preferences_sets_cookies_not_session_data(client, redis_client):
    response = client.post_form("/preferences", {"theme": "dark", "language": "fr"})
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert any(c.startswith("theme=dark;") and "SameSite=Lax" in c for c in cookies)
    assert any(c.startswith("lang=fr;") for c in cookies)
    for key in redis_client.scan_iter("session:*"):
        assert b"dark" not in redis_client.get(key)


def test_every_page_honours_the_preferences(client, auth):
    client.post_form("/preferences", {"theme": "dark", "language": "fr"})
    for path in ("/", "/login", "/register", "/nope"):
        page = client.get(path).get_data(as_text=True)
        assert 'data-theme="dark"' in page and 'lang="fr"' in page
    assert "Accueil" in client.get("/").get_data(as_text=True)


def test_dashboard_shows_the_preferences(client, auth):
    client.post_form("/preferences", {"theme": "dark", "language": "en"})
    auth.signed_in("alice")
    assert "Theme: Dark" in client.get("/dashboard").get_data(as_text=True)


def test_unknown_preference_values_are_rejected_or_ignored(client):
    response = client.post_form("/preferences", {"theme": "neon", "language": "xx"})
    assert response.status_code == 422
    assert "Not a valid choice" in response.get_data(as_text=True)
    client.set_cookie("theme", "neon", domain="localhost")
    assert 'data-theme="light"' in client.get("/").get_data(as_text=True)


def test_language_defaults_from_accept_language(client):
    page = client.get("/", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).get_data(as_text=True)
    assert 'lang="fr"' in page

"""The seed's demos: cookies, custom status, request info."""

from __future__ import annotations

from helpers import Auth


def test_set_cookie_sets_a_harmless_one_hour_cookie_and_says_so(client):
    response = client.get("/set-cookie")
    assert response.status_code == 200
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("demo=")]
    assert "Max-Age=3600" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert "Max-Age=3600" in response.get_data(as_text=True)


def test_custom_status_is_418_with_a_custom_header(client):
    response = client.get("/custom-status")
    assert response.status_code == 418
    assert response.headers["X-Custom-Header"] == "flask-stack"


def test_request_info_echoes_the_request_and_redacts_credentials(client, auth):
    Auth(client).signed_in("alice", remember=True)
    client.set_cookie("theme", "dark", domain="localhost")
    data = client.get("/request-info?x=1", headers={"User-Agent": "probe/1.0"}).get_json()
    assert data["method"] == "GET"
    assert data["url"] == "https://localhost/request-info?x=1"
    assert data["user_agent"] == "probe/1.0"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["cookies"]["theme"] == "dark"
    assert data["cookies"]["__Host-session"] == "[redacted]"
    assert data["cookies"]["__Host-remember"] == "[redacted]"
    assert data["cookies"]["__Host-device"] == "[redacted]"  # a recognised browser's token
    assert client.cookie("__Host-session") not in str(data)


def test_request_info_trusts_exactly_the_configured_proxy_hops(make_app):
    one_hop = make_app(PROXY_FIX_HOPS=1).test_client()
    forged = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    data = one_hop.get("/request-info", headers=forged).get_json()
    assert data["remote_addr"] == "203.0.113.7"  # the address nginx appended, not the forged one
    no_proxy = make_app(PROXY_FIX_HOPS=0).test_client()
    assert no_proxy.get("/request-info", headers=forged).get_json()["remote_addr"] == "127.0.0.1"


def test_served_by_header_only_when_asked(make_app):
    import socket

    assert "X-Served-By" not in make_app().test_client().get("/healthz").headers
    shown = make_app(EXPOSE_SERVED_BY=True).test_client().get("/healthz")
    assert shown.headers["X-Served-By"] == socket.gethostname()


def test_request_info_redacts_the_visitor_cookie_that_holds_the_csrf_secret(client):
    client.get("/login")
    data = client.get("/request-info").get_json()
    assert data["cookies"]["__Host-visitor"] == "[redacted]"

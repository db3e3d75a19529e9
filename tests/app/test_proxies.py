"""X-Forwarded-* count only when nginx sent them (PROXY_FIX_TRUSTED, app/proxies.py)."""

from __future__ import annotations

import ipaddress

import pytest
from app.proxies import RESOLVE_INTERVAL, TrustedProxyFix

FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil"}
NGINX, NEIGHBOUR = "172.20.0.5", "172.20.0.9"


def info(app, peer, headers=FORGED):
    client = app.test_client()
    return client.get("/request-info", headers=headers, environ_base={"REMOTE_ADDR": peer})


@pytest.mark.parametrize("trusted", [[NGINX], ["172.20.0.0/29"], ["10.0.0.0/8", NGINX]])
def test_the_trusted_proxy_says_who_the_client_is(make_app, trusted):
    app = make_app(PROXY_FIX_HOPS=1, PROXY_FIX_TRUSTED=trusted)
    data = info(app, NGINX).get_json()
    assert data["remote_addr"] == "6.6.6.6"
    assert data["url"] == "http://evil/request-info"


def test_a_neighbour_cannot_forge_the_client_address_scheme_or_host(make_app):
    app = make_app(PROXY_FIX_HOPS=1, PROXY_FIX_TRUSTED=[NGINX])
    data = info(app, NEIGHBOUR).get_json()
    assert data["remote_addr"] == NEIGHBOUR
    assert data["url"] == "https://localhost/request-info"


def test_a_neighbours_forwarded_headers_are_removed_for_everything_downstream(make_app):
    app = make_app(PROXY_FIX_HOPS=1, PROXY_FIX_TRUSTED=[NGINX])
    seen = {}

    @app.get("/_headers")
    def headers():
        from flask import request

        seen.update(request.headers)
        return ""

    app.test_client().get(
        "/_headers", headers={**FORGED, "Forwarded": "for=6.6.6.6"},
        environ_base={"REMOTE_ADDR": NEIGHBOUR},
    )  # fmt: skip
    assert not {name.lower() for name in seen} & {
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"
    }  # fmt: skip


def test_no_proxy_configured_trusts_nobody(make_app):
    app = make_app(PROXY_FIX_HOPS=0, PROXY_FIX_TRUSTED=["0.0.0.0/0"])
    assert info(app, "127.0.0.1").get_json()["remote_addr"] == "127.0.0.1"


def test_the_default_trusts_a_proxy_on_loopback_only(make_app):
    app = make_app(PROXY_FIX_HOPS=1)
    assert app.config["PROXY_FIX_TRUSTED"] == ["127.0.0.1", "::1"]
    assert info(app, "127.0.0.1").get_json()["remote_addr"] == "6.6.6.6"
    assert info(app, NEIGHBOUR).get_json()["remote_addr"] == NEIGHBOUR


class Resolver:
    """A DNS that answers what the test says, and counts the questions."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = {ipaddress.ip_address(a) for a in addresses}
        self.calls = 0

    def __call__(self, name: str) -> set:
        assert name == "nginx"
        self.calls += 1
        return set(self.addresses)


def test_a_proxy_named_by_host_name_is_looked_up_again_when_it_moves(clock):
    dns = Resolver()  # nginx not started yet
    proxy = TrustedProxyFix(lambda e, s: [], ["nginx"], resolver=dns, clock=clock)
    assert not proxy.trusts(NGINX)
    dns.addresses = {ipaddress.ip_address(NGINX)}
    assert not proxy.trusts(NGINX)  # asked less than RESOLVE_INTERVAL ago: not again
    assert dns.calls == 1
    clock.advance(RESOLVE_INTERVAL)
    assert proxy.trusts(NGINX) and dns.calls == 2
    assert proxy.trusts(NGINX) and dns.calls == 2  # known: no lookup per request
    assert not proxy.trusts(NEIGHBOUR)  # unknown peers cost a lookup per interval at most
    for _ in range(5):
        assert not proxy.trusts(NEIGHBOUR)
    assert dns.calls == 2


def test_a_request_without_forwarded_headers_costs_no_lookup(clock):
    dns = Resolver(NGINX)
    seen = []
    proxy = TrustedProxyFix(lambda e, s: seen.append(e["REMOTE_ADDR"]), ["nginx"], resolver=dns)
    proxy({"REMOTE_ADDR": NEIGHBOUR}, None)  # a healthcheck, before nginx even exists
    assert seen == [NEIGHBOUR] and dns.calls == 0
    proxy({"REMOTE_ADDR": NGINX, "HTTP_X_FORWARDED_FOR": "6.6.6.6"}, None)
    assert dns.calls == 1 and seen[-1] == "6.6.6.6"


def test_unix_socket_peers_and_garbage_are_not_trusted():
    proxy = TrustedProxyFix(lambda e, s: [], ["0.0.0.0/0", "::/0"])
    assert not proxy.trusts(None)
    assert not proxy.trusts("")
    assert not proxy.trusts("unix:/run/socket")
    assert proxy.trusts("fe80::1%eth0")


def test_more_than_one_hop_is_refused(make_app):
    from app.environment import ConfigError

    with pytest.raises(ConfigError, match="PROXY_FIX_HOPS"):
        make_app(PROXY_FIX_HOPS=2)

"""Who can reach whom in docker-compose.yml: each service on the networks it needs, no more.

A container reaches another only through a network they share. gunicorn (8000) and web's
metrics port (9100) listen on every network web joins, so web shares a network with nginx
(`edge`), its data services and Prometheus only: never with acme, the probes or exporters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# Every service (all profiles) and the services it shares at least one network with.
PEERS = {
    "nginx": {"web", "acme", "nginx-exporter", "blackbox-exporter"},
    "web": {"nginx", "migrate", "worker", "housekeeping", "db", "redis", "prometheus"},
    # pgBackRest: db archives to backup; backup copies through db-agent; restore reads backup.
    "db-agent": {"db", "backup", "restore"},
    "backup": {"db", "db-agent", "restore", "prometheus", "nginx-exporter", "postgres-exporter",
               "redis-exporter", "blackbox-exporter"},
    "restore": {"db", "db-agent", "backup"},
    "migrate": {"web", "worker", "housekeeping", "db", "redis"},
    "housekeeping": {"web", "migrate", "worker", "db", "redis"},
    "db": {"web", "migrate", "worker", "housekeeping", "redis", "postgres-exporter", "db-agent",
           "backup", "restore"},
    "redis": {"web", "migrate", "worker", "housekeeping", "db", "redis-exporter"},
    "worker": {"web", "migrate", "housekeeping", "db", "redis", "mail"},
    "mail": {"worker", "alertmanager"},
    "secrets": set(),
    "acme": {"nginx", "nginx-exporter", "blackbox-exporter"},
    "prometheus": {"web", "nginx-exporter", "postgres-exporter", "redis-exporter",
                   "blackbox-exporter", "backup", "alertmanager"},
    "nginx-exporter": {"nginx", "acme", "blackbox-exporter", "prometheus", "postgres-exporter",
                       "redis-exporter", "backup"},
    "postgres-exporter": {"db", "prometheus", "nginx-exporter", "redis-exporter",
                          "blackbox-exporter", "backup"},
    "redis-exporter": {"redis", "prometheus", "nginx-exporter", "postgres-exporter",
                       "blackbox-exporter", "backup"},
    "blackbox-exporter": {"nginx", "acme", "nginx-exporter", "prometheus", "postgres-exporter",
                          "redis-exporter", "backup"},
    # Prometheus (alerting) and the SMTP server (alert-mail) only: not the worker's `mail`.
    "alertmanager": {"prometheus", "mail"},
}  # fmt: skip
# Networks with a route to the outside: published ports and the ACME CA need one.
EXTERNAL = {"front", "prometheus-ui", "mail", "alert-mail"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def networks_of(service: dict[str, Any]) -> set[str]:
    return set(service.get("networks", [])) if service.get("network_mode") != "none" else set()


def test_each_service_reaches_exactly_its_peers(compose):
    services = compose["services"]
    assert set(services) == set(PEERS)
    for name, service in services.items():
        mine = networks_of(service)
        peers = {
            other
            for other, theirs in services.items()
            if other != name and mine & networks_of(theirs)
        }
        assert peers == PEERS[name], name


def test_nginx_and_web_alone_share_the_edge_network(compose):
    members = {n for n, s in compose["services"].items() if "edge" in networks_of(s)}
    assert members == {"nginx", "web"}


def test_web_trusts_forwarded_headers_from_nginx_only(compose):
    env = compose["services"]["web"]["environment"]
    assert str(env["PROXY_FIX_HOPS"]) == "1"
    assert env["PROXY_FIX_TRUSTED"] == "${PROXY_FIX_TRUSTED:-nginx}"


def test_only_the_public_networks_route_outside(compose):
    declared = compose["networks"]
    used = set().union(*(networks_of(s) for s in compose["services"].values()))
    assert used == set(declared)
    for name, spec in declared.items():
        assert bool((spec or {}).get("internal")) == (name not in EXTERNAL), name

#!/usr/bin/env python3
"""The acme service's two decisions, kept out of shell so `make test` checks them.

`public-name NAME`: exit 0 when NAME is a name a public CA can validate over HTTP-01 (so the
service asks for a certificate), 1 otherwise, saying why. `directory`: print the ACME
directory URL chosen by ACME_DIRECTORY and ACME_STAGING, or exit 2 on a contradiction.
Runs on the image's Debian python3 (no third-party import).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# Suffixes that only ever resolve on a private network or this machine: no public CA can
# reach them, so asking would only burn the CA's failed-validation limit (5 an hour).
# `.test` and `.example` are reserved too, but stay allowed: a private test CA (Pebble in
# tests/e2e) validates them, and a public CA refuses them at once, before any validation.
PRIVATE_SUFFIXES = (
    "localhost",
    "local",  # mDNS
    "localdomain",
    "internal",  # ICANN's private-use TLD
    "lan",
    "home",
    "corp",
    "home.arpa",
    "invalid",
)
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
TRUE = {"1", "true", "yes", "on"}
FALSE = {"", "0", "false", "no", "off"}


def public_name_problem(name: str) -> str | None:
    """Return why NAME cannot get a certificate from a public CA, or None if it can."""
    host = name.strip().lower().removesuffix(".")
    if not host:
        return "it is empty"
    if ":" in host:
        return "it is an IPv6 address (HTTP-01 certificates are for DNS names)"
    if len(host) > 253:
        return "it is longer than 253 characters"
    labels = host.split(".")
    if len(labels) < 2:
        return "it has no dot (a single-label name is local to this network)"
    if "*" in host:
        return "it is a wildcard (HTTP-01 cannot validate wildcards)"
    if not all(LABEL.match(label) for label in labels):
        return "it is not a valid DNS name (letters, digits and inner hyphens, 1-63 per label)"
    if labels[-1].isdigit():
        return "it is an IPv4 address (HTTP-01 certificates are for DNS names)"
    for suffix in PRIVATE_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return f"it ends in .{suffix}, which is never public"
    return None


def directory_url(env: Mapping[str, str]) -> str:
    """Return the ACME directory URL; raise ValueError when the settings contradict."""
    staging = env.get("ACME_STAGING", "").strip().lower()
    if staging not in TRUE | FALSE:
        raise ValueError(f"ACME_STAGING must be true or false, not {staging!r}")
    directory = env.get("ACME_DIRECTORY", "").strip()
    if directory and staging in TRUE:
        raise ValueError(
            "ACME_STAGING selects Let's Encrypt's staging CA; with ACME_DIRECTORY set, "
            "point ACME_DIRECTORY at your CA's own staging directory instead"
        )
    if directory and not directory.startswith("https://"):
        raise ValueError(f"ACME_DIRECTORY must be an https:// URL, not {directory!r}")
    if directory:
        return directory
    return LETS_ENCRYPT_STAGING if staging in TRUE else LETS_ENCRYPT


def main(argv: list[str]) -> int:
    """Run one sub-command (see the module docstring); return the exit status."""
    if len(argv) == 2 and argv[0] == "public-name":
        problem = public_name_problem(argv[1])
        if problem:
            print(f"{argv[1]!r} is not a public name: {problem}", file=sys.stderr)
            return 1
        return 0
    if argv == ["directory"]:
        try:
            print(directory_url(os.environ))
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    print("usage: acme-config public-name NAME | directory", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

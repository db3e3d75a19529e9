"""TLS as a scanner sees it: TLS 1.2 and 1.3 only, Mozilla intermediate suites only."""

from __future__ import annotations

import pytest
from sslyze import (
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

from .conftest import Stack

pytestmark = pytest.mark.e2e

PROTOCOLS = {
    "ssl_2_0_cipher_suites": ScanCommand.SSL_2_0_CIPHER_SUITES,
    "ssl_3_0_cipher_suites": ScanCommand.SSL_3_0_CIPHER_SUITES,
    "tls_1_0_cipher_suites": ScanCommand.TLS_1_0_CIPHER_SUITES,
    "tls_1_1_cipher_suites": ScanCommand.TLS_1_1_CIPHER_SUITES,
    "tls_1_2_cipher_suites": ScanCommand.TLS_1_2_CIPHER_SUITES,
    "tls_1_3_cipher_suites": ScanCommand.TLS_1_3_CIPHER_SUITES,
}
WEAK = ("RC4", "3DES", "DES_", "NULL", "EXPORT", "anon", "MD5", "CBC")


@pytest.fixture(scope="module")
def accepted(stack: Stack) -> dict[str, list[str]]:
    """Scan the HTTPS port once; return the accepted suite names per protocol."""
    scanner = Scanner()
    location = ServerNetworkLocation(
        hostname="localhost", port=stack.https_port, ip_address="127.0.0.1"
    )
    scanner.queue_scans(
        [ServerScanRequest(server_location=location, scan_commands=set(PROTOCOLS.values()))]
    )
    [result] = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    suites: dict[str, list[str]] = {}
    for attribute in PROTOCOLS:
        attempt = getattr(result.scan_result, attribute)
        assert attempt.status == ScanCommandAttemptStatusEnum.COMPLETED, attempt.error_trace
        suites[attribute] = [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
    return suites


def test_only_tls_1_2_and_1_3_are_accepted(accepted: dict[str, list[str]]) -> None:
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert accepted[f"{old}_cipher_suites"] == [], old
    assert accepted["tls_1_2_cipher_suites"]
    assert accepted["tls_1_3_cipher_suites"]


def test_tls_1_2_suites_are_ecdhe_with_aead(accepted: dict[str, list[str]]) -> None:
    for suite in accepted["tls_1_2_cipher_suites"]:
        assert suite.startswith("TLS_ECDHE_"), suite
        assert suite.endswith(("_GCM_SHA256", "_GCM_SHA384", "_CHACHA20_POLY1305_SHA256")), suite
        assert not any(weak in suite for weak in WEAK), suite


def test_tls_1_3_suites_are_standard(accepted: dict[str, list[str]]) -> None:
    allowed = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
    assert set(accepted["tls_1_3_cipher_suites"]) <= allowed

"""acme/deploy.sh: certbot's certificate lands where nginx reads it, whole and only when new."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "acme" / "deploy.sh"


def deploy(lineage: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    """Run the script as certbot's deploy step does (RENEWED_LINEAGE) into dest."""
    env = {**os.environ, "RENEWED_LINEAGE": str(lineage), "ACME_TLS_DIR": str(dest)}
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, check=False
    )


def lineage_with(tmp: Path, serial: int) -> Path:
    """A certbot lineage folder holding certificate number `serial`."""
    live = tmp / "live" / "shop.example.com"
    live.mkdir(parents=True, exist_ok=True)
    (live / "fullchain.pem").write_text(f"leaf {serial}\nintermediate\n")
    (live / "privkey.pem").write_text(f"key {serial}\n")
    return live


def self_signed_volume(tmp: Path) -> Path:
    """The tls volume as nginx/30-self-signed-cert.sh leaves it."""
    dest = tmp / "tls"
    dest.mkdir()
    (dest / "tls.crt").write_text("self-signed\n")
    (dest / "tls.key").write_text("self-signed key\n")
    (dest / ".self-signed").write_text("shop.example.com")
    return dest


def test_the_certificate_replaces_the_self_signed_one(tmp_path: Path) -> None:
    dest = self_signed_volume(tmp_path)
    done = deploy(lineage_with(tmp_path, 1), dest)
    assert done.returncode == 0, done.stderr
    assert (dest / "tls.crt").read_text() == "leaf 1\nintermediate\n"
    assert (dest / "tls.key").read_text() == "key 1\n"
    # nginx's start-up script keeps a certificate without its marker across restarts.
    assert not (dest / ".self-signed").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["tls.crt", "tls.key"]  # no leftovers
    assert (dest / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (dest / "tls.crt").stat().st_mode & 0o777 == 0o644
    assert "installed the certificate" in done.stdout


def test_the_same_certificate_is_not_rewritten(tmp_path: Path) -> None:
    dest = self_signed_volume(tmp_path)
    live = lineage_with(tmp_path, 1)
    deploy(live, dest)
    before = {p.name: p.stat().st_ino for p in dest.iterdir()}
    done = deploy(live, dest)
    assert done.returncode == 0 and done.stdout == ""
    assert {p.name: p.stat().st_ino for p in dest.iterdir()} == before  # nothing to reload


def test_a_renewed_certificate_replaces_the_previous_one(tmp_path: Path) -> None:
    dest = self_signed_volume(tmp_path)
    deploy(lineage_with(tmp_path, 1), dest)
    done = deploy(lineage_with(tmp_path, 2), dest)
    assert done.returncode == 0, done.stderr
    assert (dest / "tls.crt").read_text().startswith("leaf 2\n")
    assert (dest / "tls.key").read_text() == "key 2\n"


def test_a_missing_lineage_fails_and_leaves_nginx_certificate_alone(tmp_path: Path) -> None:
    dest = self_signed_volume(tmp_path)
    done = deploy(tmp_path / "live" / "nothing", dest)
    assert done.returncode != 0
    assert (dest / "tls.crt").read_text() == "self-signed\n"
    assert (dest / ".self-signed").exists()

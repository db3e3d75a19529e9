"""web/init-secrets.py: generate once, reuse, and never silently replace a lost password."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from helpers import INIT_SECRETS


def run(root: Path, pgdata: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script on folders under `root`, as the `secrets` service does."""
    environ = {
        "PATH": os.environ["PATH"],
        "SECRETS_ROOT": str(root),
        "PGDATA_SEEN": str(pgdata),
        "BACKUP_REPO_SEEN": str(pgdata.parent / "backup-repo"),
        "APP_UID": str(os.getuid()),
        "PGBACKREST_UID": str(os.getuid()),
        **env,
    }
    return subprocess.run(
        [sys.executable, str(INIT_SECRETS)],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_generates_once_then_reuses(tmp_path):
    first = run(tmp_path / "s", tmp_path / "pgdata")
    assert first.returncode == 0, first.stderr
    password = (tmp_path / "s" / "canonical" / "postgres_password").read_text()
    assert run(tmp_path / "s", tmp_path / "pgdata").returncode == 0
    assert (tmp_path / "s" / "canonical" / "postgres_password").read_text() == password
    assert (tmp_path / "s" / "db" / "postgres_password").read_text() == password
    assert password not in first.stdout + first.stderr


def test_a_lost_password_with_an_existing_database_stops_with_one_clear_line(tmp_path):
    pgdata = tmp_path / "pgdata"
    assert run(tmp_path / "s", pgdata).returncode == 0
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("17\n")
    (tmp_path / "s" / "canonical" / "postgres_password").unlink()  # the volume was lost

    result = run(tmp_path / "s", pgdata)
    assert result.returncode != 0
    assert "postgres_password is missing but the database" in result.stderr
    assert "POSTGRES_PASSWORD" in result.stderr
    assert not (tmp_path / "s" / "canonical" / "postgres_password").exists()

    given = run(tmp_path / "s", pgdata, POSTGRES_PASSWORD="the-database-password")
    assert given.returncode == 0, given.stderr


def test_a_refused_run_writes_nothing_so_a_recovery_kit_can_still_restore_the_volume(tmp_path):
    """The whole volume was lost: the stop comes before any secret is generated."""
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("17\n")
    (tmp_path / "s" / "canonical").mkdir(parents=True)

    result = run(tmp_path / "s", pgdata)
    assert result.returncode != 0
    assert "Nothing was generated" in result.stderr
    assert list((tmp_path / "s" / "canonical").iterdir()) == []


def test_the_exporters_get_their_own_passwords_and_migrate_the_postgres_one(tmp_path):
    result = run(tmp_path / "s", tmp_path / "pgdata")
    assert result.returncode == 0, result.stderr
    canonical, monitor = tmp_path / "s" / "canonical", tmp_path / "s" / "monitor"
    postgres = (canonical / "postgres_monitor_password").read_text()
    assert (monitor / "postgres_password").read_text() == postgres
    assert (tmp_path / "s" / "migrate" / "postgres_monitor_password").read_text() == postgres
    redis_password = (canonical / "redis_monitor_password").read_text()
    assert (monitor / "redis_password").read_text() == redis_password
    assert "user monitor on #" in (tmp_path / "s" / "redis" / "redis.conf").read_text()
    assert not (tmp_path / "s" / "web" / "postgres_monitor_password").exists()
    assert sorted(p.name for p in monitor.iterdir()) == ["postgres_password", "redis_password"]


def test_each_service_gets_only_its_share_of_the_database_passwords(tmp_path):
    result = run(tmp_path / "s", tmp_path / "pgdata")
    assert result.returncode == 0, result.stderr
    shares = {p.name: sorted(f.name for f in p.iterdir()) for p in (tmp_path / "s").iterdir()}
    # web: its own role only; migrate: the owner's and the superuser's (bootstrap);
    # the retention job: the owner's (it deletes audit rows web may not).
    assert "postgres_password" not in shares["web"]
    assert "postgres_owner_password" not in shares["web"]
    assert {"postgres_owner_password", "postgres_password"} <= set(shares["migrate"])
    assert shares["housekeeping"] == ["postgres_owner_password", "redis_password", "secret_key"]
    owner = (tmp_path / "s" / "canonical" / "postgres_owner_password").read_text()
    assert (tmp_path / "s" / "housekeeping" / "postgres_owner_password").read_text() == owner
    assert owner not in result.stdout + result.stderr


def openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_pgbackrest_gets_a_private_ca_and_a_certificate_per_side_each_admitting_the_other(
    tmp_path,
):
    result = run(tmp_path / "s", tmp_path / "pgdata")
    assert result.returncode == 0, result.stderr
    for side, names in {"db": ["db", "db-agent"], "backup": ["backup"]}.items():
        folder = tmp_path / "s" / side
        cert, ca = str(folder / "pgbackrest.crt"), str(folder / "pgbackrest-ca.crt")
        # Signed by the CA both sides trust, named as the peers dial it, CN as tls-server-auth
        # admits it (docker-compose.yml: backup=db on db-agent, db=db on backup).
        assert openssl("verify", "-CAfile", ca, cert).strip().endswith("OK")
        text = openssl("x509", "-in", cert, "-noout", "-subject", "-ext", "subjectAltName")
        assert f"CN={side}" in text.replace(" ", "")
        assert ", ".join(f"DNS:{name}" for name in names) in text
        # pgBackRest refuses a key that others may read: 0400, owned by the image's postgres.
        key = folder / "pgbackrest.key"
        assert oct(key.stat().st_mode & 0o777) == "0o400"
        assert key.stat().st_uid == os.getuid()
    assert "PRIVATE KEY" not in (tmp_path / "s" / "db" / "pgbackrest-ca.crt").read_text()
    assert not list((tmp_path / "s" / "db").glob("*ca.key")), "the CA's key left canonical"


def test_the_repository_passphrase_reaches_backup_alone_and_is_kept_across_runs(tmp_path):
    assert run(tmp_path / "s", tmp_path / "pgdata").returncode == 0
    conf = tmp_path / "s" / "backup" / "pgbackrest.conf"
    first = conf.read_text()
    passphrase = (tmp_path / "s" / "canonical" / "backup_cipher_pass").read_text()
    assert first == f"[global]\nrepo1-cipher-pass={passphrase}\n"
    assert oct(conf.stat().st_mode & 0o777) == "0o400"
    key = (tmp_path / "s" / "backup" / "pgbackrest.key").read_text()

    again = run(tmp_path / "s", tmp_path / "pgdata")
    assert again.returncode == 0, again.stderr
    assert conf.read_text() == first  # a new passphrase would make the repository unreadable
    assert (tmp_path / "s" / "backup" / "pgbackrest.key").read_text() == key
    assert "pgbackrest TLS: reused" in again.stdout
    for share in ("web", "migrate", "db", "redis", "monitor", "housekeeping"):
        for path in (tmp_path / "s" / share).iterdir():
            assert passphrase not in path.read_text(), f"{share}/{path.name} holds it"
    assert passphrase not in again.stdout + again.stderr


def test_the_smtp_password_reaches_the_mail_share_alone_and_is_never_generated(tmp_path):
    unset = run(tmp_path / "s", tmp_path / "pgdata")
    assert unset.returncode == 0, unset.stderr
    mail = tmp_path / "s" / "mail"
    assert (mail / "smtp_password").read_text() == ""  # the app and Alertmanager: none
    given = run(tmp_path / "s", tmp_path / "pgdata", SMTP_PASSWORD="provider-password")
    assert given.returncode == 0, given.stderr
    assert sorted(p.name for p in mail.iterdir()) == ["smtp_password"]
    assert (mail / "smtp_password").read_text() == "provider-password"
    for share in ("web", "migrate", "db", "redis", "monitor", "housekeeping", "backup"):
        for path in (tmp_path / "s" / share).iterdir():
            assert "provider-password" not in path.read_text(), f"{share}/{path.name}"
    assert "provider-password" not in given.stdout + given.stderr


def lose_the_secrets_volume(root: Path) -> None:
    for path in (root / "canonical").iterdir():
        path.unlink()


def test_a_lost_mfa_key_with_a_surviving_database_stops_with_one_clear_line(tmp_path):
    pgdata = tmp_path / "pgdata"
    assert run(tmp_path / "s", pgdata).returncode == 0
    key = (tmp_path / "s" / "canonical" / "mfa_encryption_key").read_text()
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("17\n")
    lose_the_secrets_volume(tmp_path / "s")

    # The database password given back (the fix the first stop names), the key is not.
    result = run(tmp_path / "s", pgdata, POSTGRES_PASSWORD="the-database-password")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "mfa_encryption_key is missing but the database" in line
    assert "MFA_ENCRYPTION_KEYS" in line
    assert not (tmp_path / "s" / "canonical" / "mfa_encryption_key").exists()
    assert (tmp_path / "s" / "web" / "mfa_encryption_key").read_text() == key  # untouched

    given = run(tmp_path / "s", pgdata, POSTGRES_PASSWORD="the-database-password",
                MFA_ENCRYPTION_KEYS=key)  # fmt: skip
    assert given.returncode == 0, given.stderr


def test_an_mfa_key_new_to_an_older_installation_is_generated(tmp_path):
    # A secrets volume from before the key existed: nothing was encrypted with one yet.
    pgdata = tmp_path / "pgdata"
    assert run(tmp_path / "s", pgdata).returncode == 0
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("17\n")
    (tmp_path / "s" / "canonical" / "mfa_encryption_key").unlink()
    result = run(tmp_path / "s", pgdata)
    assert result.returncode == 0, result.stderr
    assert "mfa_encryption_key: generated" in result.stdout


def test_a_lost_backup_passphrase_with_a_surviving_repository_stops_with_one_clear_line(
    tmp_path,
):
    pgdata, repository = tmp_path / "pgdata", tmp_path / "backup-repo"
    assert run(tmp_path / "s", pgdata).returncode == 0
    passphrase = (tmp_path / "s" / "canonical" / "backup_cipher_pass").read_text()
    conf = (tmp_path / "s" / "backup" / "pgbackrest.conf").read_text()
    (repository / "archive" / "db").mkdir(parents=True)  # pgBackRest's layout
    (repository / "archive" / "db" / "archive.info").write_text("encrypted")
    (tmp_path / "s" / "canonical" / "backup_cipher_pass").unlink()

    result = run(tmp_path / "s", pgdata)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "backup_cipher_pass is missing but the backup repository" in line
    assert "BACKUP_CIPHER_PASS" in line
    assert (tmp_path / "s" / "backup" / "pgbackrest.conf").read_text() == conf  # untouched

    given = run(tmp_path / "s", pgdata, BACKUP_CIPHER_PASS=passphrase)
    assert given.returncode == 0, given.stderr
    assert (tmp_path / "s" / "backup" / "pgbackrest.conf").read_text() == conf


def test_every_generated_secret_that_protects_lasting_data_is_guarded():
    # Each secret whose loss makes data unreadable stops the stack instead of being
    # replaced; the others (passwords migrate or secrets sets again) may be regenerated.
    spec = importlib.util.spec_from_file_location("init_secrets", INIT_SECRETS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.GUARDED) == {"postgres_password", "mfa_encryption_key", "backup_cipher_pass"}

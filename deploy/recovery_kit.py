"""The recovery kit: one encrypted file holding what a new host needs besides the backups.

A stack's generated secrets live in its `secrets` volume (web/init-secrets.py writes them once
and reuses them): the database passwords, SECRET_KEY, the key that encrypts the authenticator
apps' secrets, pgBackRest's TLS material and the backup repository's passphrase. Lose that
volume with the host and the backups cannot be read, nor the enrolled authenticator apps. The
kit holds the volume's files and the operator's settings (`.env`), sealed with a passphrase
the operator keeps elsewhere (docs/operations.md, "Losing the host").

    recovery_kit.py create FILE    seal the running stack's secrets and .env into FILE
    recovery_kit.py check FILE     open FILE, print what it holds (names, never values)
    recovery_kit.py restore FILE   put FILE's secrets into this stack's `secrets` volume
                                   (before its first start) and write .env if there is none

The passphrase comes from RECOVERY_KIT_PASSPHRASE or is asked for (twice for `create`).
COMPOSE is the compose command (with -p/-f/--env-file as needed), as for deploy/rollout.sh;
DOCKER_HOST=ssh://... reaches another host's engine.

The format: a magic line, one line of JSON (version, scrypt's parameters, salt, nonce), then
AES-256-GCM over a JSON document, the header line authenticated with it. scrypt at 2^17
costs about 0.3 s and 128 MiB here: guessing a passphrase is slow on any machine.
"""

from __future__ import annotations

import base64
import getpass
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ROOT = Path(__file__).resolve().parents[1]
MAGIC = b"flask-stack recovery kit\n"
VERSION = 1
SCRYPT = {"n": 2**17, "r": 8, "p": 1}
MIN_PASSPHRASE = 12
# The secrets service mounts the canonical volume here (docker-compose.yml, `secrets`).
CANONICAL = "/secrets/canonical"


class KitError(Exception):
    """A refusal: printed as one line, exit status 1."""


@dataclass
class Kit:
    """What a kit holds: the canonical secrets (file name -> content) and the settings."""

    secrets: dict[str, bytes]
    settings: str = ""  # .env's text; empty when the stack ran on defaults alone
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    commit: str = ""

    def to_bytes(self) -> bytes:
        """Return the kit as JSON (secrets base64-encoded)."""
        doc = {
            "created": self.created,
            "commit": self.commit,
            "settings": self.settings,
            "secrets": {k: base64.b64encode(v).decode() for k, v in sorted(self.secrets.items())},
        }
        return json.dumps(doc).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Kit:
        """Read a kit written by `to_bytes`."""
        doc = json.loads(data)
        files = {k: base64.b64decode(v) for k, v in doc["secrets"].items()}
        return cls(files, doc["settings"], doc["created"], doc["commit"])


def _key(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    return Scrypt(salt=salt, length=32, **params).derive(passphrase.encode())


def seal(kit: Kit, passphrase: str) -> bytes:
    """Return the kit encrypted under passphrase, in the kit file format."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KitError(f"the passphrase is too short: use {MIN_PASSPHRASE} characters or more")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {"version": VERSION, "kdf": "scrypt", **SCRYPT}
    header |= {"salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode()}
    line = json.dumps(header).encode() + b"\n"
    sealed = AESGCM(_key(passphrase, salt, SCRYPT)).encrypt(nonce, kit.to_bytes(), MAGIC + line)
    return MAGIC + line + sealed


def unseal(data: bytes, passphrase: str) -> Kit:
    """Return the kit in data, or raise KitError saying why it cannot be read."""
    if not data.startswith(MAGIC):
        raise KitError("this file is not a recovery kit")
    line, _, sealed = data[len(MAGIC) :].partition(b"\n")
    try:
        header = json.loads(line)
        version = header["version"]
        params = {k: int(header[k]) for k in SCRYPT}
        salt, nonce = (base64.b64decode(header[k]) for k in ("salt", "nonce"))
    except (ValueError, KeyError, TypeError) as error:
        raise KitError(f"the kit's header is damaged ({error})") from None
    if version != VERSION:
        raise KitError(f"kit format {version} is not known here (this version reads {VERSION})")
    if header.get("kdf") != "scrypt" or params["n"] > 2**20:
        raise KitError("the kit's header names parameters this version does not accept")
    try:
        plain = AESGCM(_key(passphrase, salt, params)).decrypt(nonce, sealed, MAGIC + line + b"\n")
    except InvalidTag:
        raise KitError("wrong passphrase, or the file was changed") from None
    return Kit.from_bytes(plain)


def files_from_tar(data: bytes) -> dict[str, bytes]:
    """Return the regular files of a tar stream, by name (directories and links skipped)."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive:
            if member.isfile() and (handle := archive.extractfile(member)):
                files[member.name.removeprefix("./")] = handle.read()
    return files


def tar_from_files(files: dict[str, bytes]) -> bytes:
    """Return a tar stream of files, each root-owned with mode 0600 (as init-secrets writes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, content in sorted(files.items()):
            if "/" in name.strip("/") or name in ("", ".", ".."):
                raise KitError(f"the kit names a file outside the secrets volume: {name!r}")
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(content), 0o600, int(time.time())
            archive.addfile(member, io.BytesIO(content))
    return out.getvalue()


def restore_plan(kit: Kit, present: dict[str, bytes]) -> str:
    """Return "write" or "same" for a volume holding present, or raise KitError: a volume with
    other secrets belongs to another stack, and overwriting it would lock its data out."""
    if not present:
        return "write"
    if present == kit.secrets:
        return "same"
    raise KitError(
        "this stack's secrets volume already holds other secrets: the kit is for a new host"
        " (or after the volume was lost). Nothing was changed"
    )


class Stack:
    """The compose project the kit is made from or restored into."""

    def __init__(self) -> None:
        self.compose = shlex.split(os.environ.get("COMPOSE", "docker compose"))

    def _secrets_tar(self, args: list[str], stdin: bytes | None = None) -> bytes:
        # The secrets service's own container: it alone mounts the canonical volume, as root.
        command = [*self.compose, "run", "--rm", "--no-deps", "-T", "--entrypoint", "tar"]
        command += ["secrets", "-C", CANONICAL, *args]
        result = subprocess.run(  # noqa: S603 - our own arguments
            command, input=stdin, capture_output=True, check=False
        )
        if result.returncode:
            detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise KitError(f"could not reach the secrets volume: {detail[0]}")
        return result.stdout

    def read(self) -> dict[str, bytes]:
        """Return the canonical secrets, by file name."""
        return files_from_tar(self._secrets_tar(["-cf", "-", "."]))

    def write(self, files: dict[str, bytes]) -> None:
        """Put files into the canonical volume (init-secrets hands them out at the next up)."""
        self._secrets_tar(["-xf", "-", "--no-same-owner"], stdin=tar_from_files(files))


def _passphrase(confirm: bool) -> str:
    if given := os.environ.get("RECOVERY_KIT_PASSPHRASE"):
        return given
    if not sys.stdin.isatty():
        raise KitError("no passphrase: set RECOVERY_KIT_PASSPHRASE or run from a terminal")
    first = getpass.getpass("Recovery kit passphrase: ")
    if confirm and getpass.getpass("Once more: ") != first:
        raise KitError("the two passphrases differ")
    return first


def _commit() -> str:
    result = subprocess.run(  # noqa: S603 - our own arguments
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607 - git on PATH
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def create(path: Path, settings_file: Path) -> None:
    """Seal the stack's secrets and settings into path (0600, never over an existing file)."""
    files = Stack().read()
    if not files:
        raise KitError("the secrets volume is empty: start the stack once (make up) first")
    settings = settings_file.read_text() if settings_file.is_file() else ""
    sealed = seal(Kit(files, settings, commit=_commit()), _passphrase(confirm=True))
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(sealed)
    except FileExistsError:
        raise KitError(f"{path} exists: choose another name (a kit is never overwritten)") from None
    print(
        f"recovery-kit: wrote {path}: {len(files)} secrets and .env; keep it, and its passphrase,"
    )
    print('recovery-kit: away from this host (docs/operations.md, "Losing the host")')


def check(path: Path) -> Kit:
    """Open the kit at path and print what it holds, never a value."""
    kit = unseal(path.read_bytes(), _passphrase(confirm=False))
    settings = len([ln for ln in kit.settings.splitlines() if ln.strip() and ln[0] != "#"])
    print(f"recovery-kit: {path}: made {kit.created} at commit {kit.commit or '?'}")
    print(f"recovery-kit: {len(kit.secrets)} secrets: {', '.join(sorted(kit.secrets))}")
    print(f"recovery-kit: .env with {settings} setting(s)")
    return kit


def restore(path: Path, settings_file: Path) -> None:
    """Put the kit's secrets into this stack's volume and its settings into .env if absent."""
    kit = unseal(path.read_bytes(), _passphrase(confirm=False))
    stack = Stack()
    if restore_plan(kit, stack.read()) == "same":
        print("recovery-kit: the secrets volume already holds this kit's secrets")
    else:
        stack.write(kit.secrets)
        print(f"recovery-kit: {len(kit.secrets)} secrets written into the secrets volume")
    if not settings_file.exists():
        settings_file.write_text(kit.settings)
        settings_file.chmod(0o600)
        print(f"recovery-kit: wrote {settings_file} from the kit")
    elif settings_file.read_text() != kit.settings:
        print(f"recovery-kit: {settings_file} differs from the kit's and was kept", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Run one command; a refusal is one line on stderr and exit status 1."""
    if len(argv) != 2 or argv[0] not in ("create", "check", "restore"):
        print(__doc__, file=sys.stderr)
        return 2
    command, path = argv[0], Path(argv[1])
    settings = Path(os.environ.get("ENV_FILE", ROOT / ".env"))
    try:
        if command == "create":
            create(path, settings)
        elif command == "check":
            check(path)
        else:
            restore(path, settings)
    except (KitError, OSError) as error:
        print(f"recovery-kit: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

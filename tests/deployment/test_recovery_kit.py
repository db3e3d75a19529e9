"""deploy/recovery_kit.py: the kit's format, and every way it refuses (one line, nothing done)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import recovery_kit
from recovery_kit import Kit, KitError

PASSPHRASE = "a passphrase kept elsewhere"
SECRETS = {"secret_key": b"s3cr3t-value", "backup_cipher_pass": b"repository-passphrase"}


@pytest.fixture(scope="module")
def sealed() -> bytes:
    """One kit sealed once (scrypt is deliberately slow)."""
    return recovery_kit.seal(Kit(dict(SECRETS), "SERVER_NAME=example.org\n"), PASSPHRASE)


def test_a_sealed_kit_opens_with_its_passphrase(sealed):
    kit = recovery_kit.unseal(sealed, PASSPHRASE)
    assert kit.secrets == SECRETS
    assert kit.settings == "SERVER_NAME=example.org\n"


def test_no_secret_or_setting_is_readable_in_the_file(sealed):
    for value in (*SECRETS.values(), b"example.org"):
        assert value not in sealed


def test_two_kits_of_the_same_secrets_differ(sealed):
    """A fresh salt and nonce each time: equal kits cannot be told apart as equal."""
    again = recovery_kit.seal(Kit(dict(SECRETS), "SERVER_NAME=example.org\n"), PASSPHRASE)
    assert again != sealed


def test_the_wrong_passphrase_is_refused(sealed):
    with pytest.raises(KitError, match="wrong passphrase"):
        recovery_kit.unseal(sealed, PASSPHRASE + "!")


def test_a_changed_byte_is_refused(sealed):
    damaged = bytearray(sealed)
    damaged[-5] ^= 1
    with pytest.raises(KitError, match="wrong passphrase, or the file was changed"):
        recovery_kit.unseal(bytes(damaged), PASSPHRASE)


def test_a_changed_header_is_refused(sealed):
    """The header is authenticated with the contents: a lowered cost cannot be slipped in."""
    magic, header, rest = sealed.split(b"\n", 2)
    fields = json.loads(header) | {"p": 2}
    forged = b"\n".join([magic, json.dumps(fields).encode(), rest])
    with pytest.raises(KitError, match="wrong passphrase, or the file was changed"):
        recovery_kit.unseal(forged, PASSPHRASE)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PGDMP\x01\x0e", "not a recovery kit"),
        (recovery_kit.MAGIC + b"{not json\n", "header is damaged"),
        (recovery_kit.MAGIC + b'{"version": 1}\n', "header is damaged"),
    ],
)
def test_what_is_not_a_kit_is_refused(data, message):
    with pytest.raises(KitError, match=message):
        recovery_kit.unseal(data, PASSPHRASE)


def test_a_later_format_is_refused_by_name(sealed):
    magic, header, rest = sealed.split(b"\n", 2)
    later = b"\n".join([magic, json.dumps(json.loads(header) | {"version": 2}).encode(), rest])
    with pytest.raises(KitError, match="kit format 2 is not known here"):
        recovery_kit.unseal(later, PASSPHRASE)


def test_a_short_passphrase_is_refused():
    with pytest.raises(KitError, match="too short"):
        recovery_kit.seal(Kit(dict(SECRETS)), "short")


def test_the_secrets_go_back_as_root_only_files():
    stream = recovery_kit.tar_from_files(SECRETS)
    assert recovery_kit.files_from_tar(stream) == SECRETS
    with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
        assert {m.mode for m in archive} == {0o600}
        assert {(m.uid, m.gid) for m in archive} == {(0, 0)}


@pytest.mark.parametrize("name", ["../etc/passwd", "web/secret_key", "", ".."])
def test_a_name_outside_the_volume_is_refused(name):
    with pytest.raises(KitError, match="outside the secrets volume"):
        recovery_kit.tar_from_files({name: b"x"})


def test_a_volume_from_tar_keeps_files_and_skips_directories():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name in (".", "./.tls-x"):  # init-secrets' working folder, were one left
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            archive.addfile(folder)
        member = tarfile.TarInfo("./secret_key")
        member.size = 3
        archive.addfile(member, io.BytesIO(b"abc"))
    assert recovery_kit.files_from_tar(out.getvalue()) == {"secret_key": b"abc"}


@pytest.mark.parametrize(
    ("present", "plan"),
    [({}, "write"), (dict(SECRETS), "same")],
)
def test_a_kit_goes_into_an_empty_volume_or_one_already_holding_it(present, plan):
    assert recovery_kit.restore_plan(Kit(dict(SECRETS)), present) == plan


def test_a_volume_with_other_secrets_is_never_overwritten():
    other = {"secret_key": b"another stack's"}
    with pytest.raises(KitError, match="already holds other secrets"):
        recovery_kit.restore_plan(Kit(dict(SECRETS)), other)


def test_check_prints_names_never_values(sealed, tmp_path, monkeypatch, capsys):
    kit = tmp_path / "kit"
    kit.write_bytes(sealed)
    monkeypatch.setenv("RECOVERY_KIT_PASSPHRASE", PASSPHRASE)
    assert recovery_kit.main(["check", str(kit)]) == 0
    out = capsys.readouterr().out
    assert "backup_cipher_pass, secret_key" in out
    assert ".env with 1 setting(s)" in out
    assert "s3cr3t" not in out and "example.org" not in out


def test_check_with_the_wrong_passphrase_is_one_line_and_status_1(
    sealed, tmp_path, monkeypatch, capsys
):
    kit = tmp_path / "kit"
    kit.write_bytes(sealed)
    monkeypatch.setenv("RECOVERY_KIT_PASSPHRASE", "not the passphrase")
    assert recovery_kit.main(["check", str(kit)]) == 1
    err = capsys.readouterr().err
    assert err == "recovery-kit: wrong passphrase, or the file was changed\n"


def test_without_a_passphrase_or_a_terminal_it_refuses(sealed, tmp_path, monkeypatch, capsys):
    kit = tmp_path / "kit"
    kit.write_bytes(sealed)
    monkeypatch.delenv("RECOVERY_KIT_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert recovery_kit.main(["check", str(kit)]) == 1
    assert "set RECOVERY_KIT_PASSPHRASE" in capsys.readouterr().err


def test_a_missing_kit_is_one_line(tmp_path, capsys):
    assert recovery_kit.main(["check", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err.startswith("recovery-kit: [Errno 2]")


def test_usage_is_refused_with_status_2(capsys):
    assert recovery_kit.main(["open"]) == 2
    assert "recovery_kit.py create FILE" in capsys.readouterr().err

"""Typed reads of environment variables, each error one line an operator can act on.

An empty value counts as unset (compose passes `${NAME:-}`), and a secret may come from the
file `NAME_FILE` names instead, as Docker and Kubernetes secrets are mounted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class ConfigError(RuntimeError):
    """A setting is missing or unsafe; the message is one line an operator can act on."""


def value_or_file(environ: Mapping[str, str], name: str) -> str | None:
    """Return `name` from the environment, or the contents of the file `<name>_FILE` names."""
    value = environ.get(name)
    file_name = environ.get(f"{name}_FILE")
    if value and file_name:
        raise ConfigError(f"both {name} and {name}_FILE are set; set only one")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={file_name} cannot be read: {exc.strerror}") from None
    return value or None


def text(environ: Mapping[str, str], name: str, default: str) -> str:
    """Return `name`, treating an empty value as unset (compose passes `${NAME:-}`)."""
    return environ.get(name) or default


def integer(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """Return `name` as a whole number of at least `minimum`."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def number(environ: Mapping[str, str], name: str, default: float) -> float:
    """Return `name` as a number (of seconds)."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None


def flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """Return `name` as true or false."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")

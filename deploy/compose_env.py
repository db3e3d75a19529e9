"""Read `.env` and interpolate `${VAR:-default}` exactly as docker compose does.

Swarm (`docker stack deploy`) and Kubernetes (`kubectl kustomize`) read no `.env`, so the
swarm-* and k8s-* targets read it here, with compose's rules: the process environment wins
over `.env`; `.env` lines follow compose's env-file syntax (docs.docker.com, "Environment
variables: .env file syntax"): `#` comments, optional `export `, spaces around `=`, single
quotes literal, double quotes with `\\n \\t \\r \\\\ \\"` escapes and interpolation, a ` #` comment
after an unquoted value, values spanning lines inside quotes.
tests/deployment/test_compose_env.py checks these rules against `docker compose config`
itself when the CLI is installed.

    compose_env.py run COMMAND [ARG...]    run COMMAND with .env's settings added

ENV_FILE names another file than .env (compose's --env-file). Standard library only: the
swarm targets run it with the system's python3.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=[ \t]*")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, or a malformed `${`."""


Lookup = Callable[[str], "str | None"]


def interpolate(text: str, lookup: Lookup) -> str:
    """Return text with `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR:+r}`
    ... replaced, and `$$` made `$` (compose's template rules)."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expression(text[i + 2 : end], lookup))
            i = end + 1
        elif match := NAME.match(text, i + 1):
            out.append(lookup(match[0]) or "")
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    raise InterpolationError(f"no closing brace in {text!r}")


def _expression(body: str, lookup: Lookup) -> str:
    match = NAME.match(body)
    if not match:
        raise InterpolationError(f"invalid interpolation ${{{body}}}")
    name, rest = match[0], body[match.end() :]
    value = lookup(name)
    if not rest:
        return value or ""
    for operator in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(operator):
            argument = rest[len(operator) :]
            break
    else:
        raise InterpolationError(f"invalid interpolation ${{{body}}}")
    present = bool(value) if operator.startswith(":") else value is not None
    if operator.endswith("-"):
        return value or "" if present else interpolate(argument, lookup)
    if operator.endswith("+"):
        return interpolate(argument, lookup) if present else ""
    if not present:
        raise InterpolationError(f"{name}: {interpolate(argument, lookup) or 'required'}")
    return value or ""


def parse_env_file(text: str, lookup: Lookup = os.environ.get) -> dict[str, str]:
    """Return the variables an env file sets; interpolation sees `lookup` first, then the
    file's earlier lines (as compose)."""
    values: dict[str, str] = {}

    def seen(name: str) -> str | None:
        found = lookup(name)
        return found if found is not None else values.get(name)

    i = 0
    while i < len(text):
        line_end = text.find("\n", i)
        line_end = len(text) if line_end < 0 else line_end
        line = text[i:line_end]
        if not line.strip() or line.lstrip().startswith("#"):
            i = line_end + 1
            continue
        match = KEY.match(line)
        if not match:
            raise ValueError(f".env: cannot read line {line!r}")
        name, start = match[1], i + match.end()
        quote = text[start] if start < len(text) and text[start] in "'\"" else ""
        if quote:
            value, end = _quoted(text, start)
            if quote == '"':
                value = interpolate(value, seen)
            i = text.find("\n", end)
            i = len(text) if i < 0 else i + 1
        else:
            raw = text[start:line_end]
            raw = re.split(r"\s#", raw, maxsplit=1)[0].strip()
            value = interpolate(raw, seen)
            i = line_end + 1
        values[name] = value
    return values


def _quoted(text: str, start: int) -> tuple[str, int]:
    """Return the value of the quoted string at text[start] and the index after it."""
    quote, out, i = text[start], [], start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            following = text[i + 1]
            if quote == '"' and following in ESCAPES:
                out.append(ESCAPES[following])
                i += 2
                continue
            if following == quote:
                out.append(quote)
                i += 2
                continue
        if char == quote:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise ValueError(f".env: unterminated {quote} string")


def environment(root: Path = ROOT, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return what compose interpolates with: `environ` (default: os.environ) over the env
    file: $ENV_FILE, or root/.env. A missing .env is no error (compose needs none); a
    missing ENV_FILE is."""
    environ = dict(os.environ if environ is None else environ)
    named = environ.get("ENV_FILE", "")
    path = root / (named or ".env")
    if named and not path.is_file():
        raise FileNotFoundError(f"ENV_FILE={named}: no such file")
    from_file = parse_env_file(path.read_text(), environ.get) if path.is_file() else {}
    return {**from_file, **environ}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "run":
        sys.exit("usage: compose_env.py run COMMAND [ARG...]")
    try:
        env = environment()
    except (ValueError, OSError) as error:
        sys.exit(f"compose_env: {error}")
    os.execvpe(argv[1], argv[1:], env)  # noqa: S606 - the caller's own command


if __name__ == "__main__":
    main(sys.argv[1:])

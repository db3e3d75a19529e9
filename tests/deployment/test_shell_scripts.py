"""Every shell script is shellchecked by `make lint`, whatever its file name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shell_scripts() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        path = ROOT / name
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as file:
                if re.match(rb"#!\s*/(usr/)?bin/(env )?(ba)?sh\b", file.readline()):
                    found.append(name)
    return found


def test_make_lint_shellchecks_every_shell_script():
    lint = re.search(r"^\t\$\(BIN\)/shellcheck (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert lint, "make lint runs no shellcheck"
    covered = set()
    for word in lint[1].split():
        if word == "$$(git" or word.startswith("ls-files") or word.endswith("')"):
            continue
        covered.add(word)
    for script in shell_scripts():
        assert script.endswith(".sh") or script in covered, f"{script} is not shellchecked"

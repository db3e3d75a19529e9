"""nginx/Dockerfile copies only what the root .dockerignore (an allow-list) lets through."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_the_nginx_image_copies_is_in_the_build_context():
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    sources = [
        words[-2]
        for words in (line.split() for line in dockerfile.splitlines())
        if words and words[0] == "COPY" and not any(w.startswith("--from") for w in words)
    ]
    assert sources
    for source in sources:
        path = source.rstrip("/")
        assert (ROOT / path).exists(), source
        assert any(path == a or path.startswith(a + "/") for a in allowed), (
            f"{source} is copied but .dockerignore leaves it out of the build context"
        )
    assert not re.search(r"^COPY\s+\.", dockerfile, re.MULTILINE)  # never the whole context

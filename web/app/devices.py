"""Readable device labels ("Firefox on Ubuntu") from User-Agent strings."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse

MAX_UA = 512  # longer User-Agent strings are cut before parsing: they are junk or abuse


@lru_cache(maxsize=1024)
def device_label(user_agent: str) -> str:
    """Return "Browser on OS" for a User-Agent string, "Unknown device" when unreadable."""
    result = parse(user_agent[:MAX_UA])
    browser = result.user_agent.family if result.user_agent else None
    system = result.os.family if result.os else None
    browser = None if browser in (None, "Other") else browser
    system = None if system in (None, "Other") else system
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "Unknown device"

"""User-given names as single safe path components, the same on Linux, macOS and Windows.

A dataset called `wheat/2024`, `..`, `CON` or `résumé\\x00` must still become one folder name
that cannot escape its parent, that Windows accepts after an export, and that stays the same
every time the tree is built. Collisions (two datasets both called `wheat`) get a stable
suffix: the first by creation order keeps the plain name, later ones get `~<short id>`.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_BYTES = 255
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]')  # core.index.names.CONTROL too
_WINDOWS_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def safe_name(name: str, fallback: str = "unnamed") -> str:
    """One path component: no separators, controls, NUL, dot-only names or reserved names."""
    text = unicodedata.normalize("NFC", str(name))
    text = _FORBIDDEN.sub("_", text).strip().rstrip(".")
    if not text or set(text) <= {".", "_", " "}:
        text = fallback
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = f"_{text}"
    return truncate_utf8(text, MAX_BYTES)


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, never cutting a character in half."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", errors="ignore").rstrip(".")


def unique_names(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(key, wanted name) in creation order -> key: unique safe name.

    The first holder of a name keeps it; later ones become `<name>~<key prefix>`, which is
    stable because keys (content or row ids) never change.
    """
    taken: set[str] = set()
    result: dict[str, str] = {}
    for key, wanted in items:
        name = safe_name(wanted)
        base, counter = name, 1
        while name.lower() in taken:  # case-insensitive: macOS and Windows fold case
            suffix = f"~{key[:8]}" + (str(counter) if counter > 1 else "")
            name = truncate_utf8(base, MAX_BYTES - len(suffix)) + suffix
            counter += 1
        taken.add(name.lower())
        result[key] = name
    return result

"""The names the index may hold: checked once, at the boundary, whatever their source.

Runs, templates and the template parser produce safe names on their own; imports, the API
and the CLI hand in whatever a user or a bundle says. Everything that writes a name into the
index calls one of these, so a hostile bundle cannot smuggle `../..`, NUL, an escape
sequence or a 6 KB name into a folder, a terminal or an export.

- `result_name`: the one rule for a result's readable name (`snv-pls15`): `[a-z0-9-]`, at
  most `RESULT_NAME_MAX` characters. The tree labels results with it, so even a row written
  before this check existed shows as one safe path component.
- `result_label`: a result's folder name (`0042_snv-pls15_x9y8z7`): sequence number,
  `result_name`, the first 6 characters of its configuration hash.
- `checked_text`: a free-form name (dataset, run, template): NFC, no control characters,
  not blank, at most 255 bytes of UTF-8. The tree still makes it a safe path component
  (`n4afs.tree.names.safe_name`); this check keeps it printable and bounded.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from n4afs_core.errors import N4AError

RESULT_NAME_MAX = 200  # a label (NNNN_name_hash6) stays well under 255 bytes
TEXT_MAX_BYTES = 255
_NOT_RESULT_CHARS = re.compile(r"[^a-z0-9-]")
_RESULT_NAME = re.compile(rf"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){{0,{RESULT_NAME_MAX - 1}}}")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: the one definition


class InvalidName(N4AError, ValueError):
    """A name that the index must not hold; the message says which rule it breaks."""


def result_name(text: str) -> str:
    """`text` in the result-name alphabet: lower case, other characters dropped, no leading,
    trailing or repeated dashes, at most RESULT_NAME_MAX characters; `pipeline` when nothing
    is left (`snv-SG1.pls_10` -> `snv-sg1pls10`)."""
    if isinstance(text, str) and _RESULT_NAME.fullmatch(text):  # every row the runner wrote:
        return text  # one match instead of three passes (labels of every result at start-up)
    cleaned = _NOT_RESULT_CHARS.sub("", str(text).lower())
    cleaned = re.sub(r"-+", "-", cleaned).strip("-")[:RESULT_NAME_MAX].rstrip("-")
    return cleaned or "pipeline"


def result_label(seq: int, name: str, config_hash: str) -> str:
    """`0042_snv-pls15_x9y8z7`: what the tree, `du` and every listing call a result. The
    name goes through `result_name` whatever the index holds, so a label is one safe path
    component."""
    return f"{seq:04d}_{result_name(name)}_{config_hash[:6]}"


def checked_result_name(value: Any) -> str:
    """`value` when it already obeys `result_name`'s rule; InvalidName otherwise."""
    if not isinstance(value, str) or result_name(value) != value:
        raise InvalidName(
            f"result name {_shown(value)} is not a valid result name (only a-z, 0-9 and '-', "
            f"at most {RESULT_NAME_MAX} characters)"
        )
    return value


def checked_text(kind: str, value: Any) -> str:
    """A free-form name (`kind`: 'dataset name', 'run name' ...) as the index may hold it."""
    if not isinstance(value, str):
        raise InvalidName(f"{kind} must be text, not {type(value).__name__}")
    text = unicodedata.normalize("NFC", value)
    if not text.strip():
        raise InvalidName(f"{kind} is empty")
    if CONTROL.search(text):
        raise InvalidName(f"{kind} {_shown(text)} contains control characters")
    if len(text.encode("utf-8")) > TEXT_MAX_BYTES:
        raise InvalidName(
            f"{kind} {_shown(text)} is {len(text.encode('utf-8'))} bytes long, more than "
            f"the {TEXT_MAX_BYTES} allowed"
        )
    return text


def _shown(value: Any) -> str:
    """The offending value, quoted with escapes and cut short: safe in a one-line message."""
    text = ascii(value)
    return text if len(text) <= 60 else text[:57] + "..."

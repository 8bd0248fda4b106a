"""Text from users and bundles, made safe to print on a terminal.

Dataset, run, result and target names are user input, and a bundle sets them for whoever
imports it. Printed raw, `\\x1b]0;...\\x07` retitles the window and `\\x1b[2J` clears the
screen; printed through rich, `barley [red]x[/red]` loses its brackets. Every string the CLI
shows passes through `visible` (for click.echo) or `shown` (for rich), defined once here.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

from typing import Any

from n4afs_core.index.names import (
    CONTROL,
)  # C0 (incl. ESC, BEL, CR, LF, TAB), DEL and C1 (incl. CSI)


def visible(value: Any) -> str:
    """`str(value)` with every control character written as visible `\\xNN` text."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def shown(value: Any) -> str:
    """`visible(value)` with rich markup escaped, for tables, titles and console.print."""
    from rich.markup import escape

    return escape(visible(value))

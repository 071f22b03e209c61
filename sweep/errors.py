"""Turning validation errors into the one-line messages users see."""

from __future__ import annotations

from pydantic import ValidationError

_NO_INPUT = ("missing", "value_error", "too_short")


def describe(error: ValidationError, prefix: str = "", first_only: bool = True) -> list[str]:
    """`path: message` per error; a scalar bad value is quoted before the message."""
    lines = []
    for err in error.errors()[: 1 if first_only else None]:
        path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key"
        elif err["type"] not in _NO_INPUT and not isinstance(err.get("input"), dict | list):
            msg = f"{err['input']!r}: {msg}"
        lines.append(f"{path}: {msg}" if path else msg)
    return lines

"""Turning validation errors into the one-line messages users see."""

from __future__ import annotations

import dataclasses
import difflib
import reprlib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T")

_NO_INPUT = ("missing", "value_error", "too_short")
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
_NOT_A_MAPPING = ("model_type", "model_attributes_type", "dataclass_type", "dict_type")
# A bad value is quoted in the message; a huge one (a pasted list, random YAML) is cut short
# so that every error stays on one readable line.
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 40, 40, 4, 3


def quote(value: object) -> str:
    """A short one-line repr of a user's value."""
    return _short.repr(value)


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """'; did you mean X?' when a valid choice is close to `name`, else ''."""
    valid = {str(c).lower(): str(c) for c in choices}
    typed = str(name).lower()
    close = difflib.get_close_matches(typed, list(valid), n=1, cutoff=0.6)
    # difflib misses swapped letters in short names (tyni -> tiny): same letters count too.
    close += [c for c in valid if sorted(c) == sorted(typed) and c != typed]
    return f"; did you mean {valid[close[0]]!r}?" if close else ""


def one_line(error: BaseException) -> str:
    """An exception as one line: `TypeName: message`, its whitespace runs as single spaces."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def unknown(what: str, name: object, choices: Sequence[object]) -> str:
    """'unknown WHAT NAME; valid: A, B; did you mean A?'"""
    valid = ", ".join(str(c) for c in choices)
    return f"unknown {what} {quote(name)}; valid: {valid}{did_you_mean(name, choices)}"


def registered(registry: Mapping[str, T], what: str, name: str) -> T:
    """`registry[name]`; an unknown name is a ValueError naming the known ones (`unknown`)."""
    if name not in registry:
        raise ValueError(unknown(what, name, list(registry)))
    return registry[name]


def path(parts: Iterable[object]) -> str:
    """`search.space.lr`, `difficulties[1]`: dotted keys, list positions in brackets."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            text = str(part)
            plain = text.replace("_", "").replace("-", "").replace(".", "").isalnum()
            out += ("." if out else "") + (text if plain else quote(text))
    return out


def describe(
    error: ValidationError,
    prefix: str | Sequence[object] = "",
    first_only: bool = True,
    schema: Any = None,
) -> list[str]:
    """`path: message` per error; a scalar bad value is quoted before the message. With the
    `schema` that was validated, an unknown key or a bad choice gets "did you mean ...?"."""
    lines = []
    base = ([prefix] if prefix else []) if isinstance(prefix, str) else list(prefix)
    for err in error.errors()[: 1 if first_only else None]:
        loc = [p for p in err["loc"] if p != "[key]"]
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        if err["type"] in _UNKNOWN_KEY:
            msg = "unknown key" + _suggest_key(schema, loc)
        elif err["loc"][-1:] == ("[key]",):
            msg = f"key {quote(value)}: {msg}"
        elif err["type"] in _NOT_A_MAPPING:
            msg = f"{quote(value)}: must be a mapping of keys to values"
        elif err["type"] not in _NO_INPUT and not isinstance(value, dict | list):
            msg = f"{quote(value)}: {msg}"
            if err["type"] == "literal_error":
                msg += did_you_mean(value, _literal_choices(schema, loc))
        where = path([*base, *loc])
        lines.append(f"{where}: {msg}" if where else msg)
    return lines


def _suggest_key(schema: Any, loc: Sequence[object]) -> str:
    return did_you_mean(loc[-1], field_names(annotation_at(schema, loc[:-1]))) if loc else ""


def _literal_choices(schema: Any, loc: Sequence[object]) -> tuple[Any, ...]:
    found = annotation_at(schema, loc)
    return typing.get_args(found) if typing.get_origin(found) is typing.Literal else ()


def field_names(tp: Any) -> list[str]:
    """The keys a pydantic model or (pydantic) dataclass accepts; [] for anything else."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    if dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp)]
    return []


def annotation_at(tp: Any, loc: Sequence[object]) -> Any:
    """The type found at `loc` inside `tp` (None when the path leaves the schema)."""
    for part in loc:
        tp = _unwrap(tp)
        if tp is None:
            return None
        fields = _field_types(tp)
        if fields is not None:
            tp = fields.get(str(part))
            continue
        args = typing.get_args(tp)
        origin = typing.get_origin(tp)
        if isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
            tp = args[1]
        elif isinstance(origin, type) and issubclass(origin, Sequence) and args:
            tp = args[0] if len(args) == 1 or (isinstance(part, int) and part < len(args)) else None
        else:
            return None
    return _unwrap(tp)


def _field_types(tp: Any) -> dict[str, Any] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {name: f.annotation for name, f in tp.model_fields.items()}
    pydantic_fields = getattr(tp, "__pydantic_fields__", None)  # a pydantic dataclass
    if isinstance(pydantic_fields, dict):
        return {name: f.annotation for name, f in pydantic_fields.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return typing.get_type_hints(tp)
    return None


def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp

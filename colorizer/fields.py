"""The frozen configs' values checked once, by each field's declared type.

`check_fields(config)` runs in a config's ``__post_init__``: a ``bool`` field takes only
true or false (the string "no" is not false), an ``int`` only a whole number (not 32.0,
not a bool), a ``float`` only a finite number (an int is widened to float), a ``str`` only
text, a ``Path`` text or a path, ``X | None`` None or an X, ``tuple[float, ...]`` a list of
them. A wrong value is a `ConfigError` whose ``key`` names the field, so that whoever
settled the config (from a TOML file, the command line) can say where it came from.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from colorizer.errors import ConfigError


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_fields(config: Any) -> None:
    """Check (and normalise: int -> float, list -> tuple, str -> Path) every field of the
    frozen dataclass `config` against its declared type."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        fixed = _check(f.name, value, hints.get(f.name, Any))
        if fixed is not value:
            object.__setattr__(config, f.name, fixed)


def _bad(name: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"{name} must be {what}, got {value!r}", key=name)


def _check(name: str, value: Any, tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        return _check(name, value, rest[0]) if len(rest) == 1 else value
    if origin is tuple:
        return _check_tuple(name, value, args)
    checker = _SCALARS.get(tp)
    return value if checker is None else checker(name, value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, "true or false", value)
    return value


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, "a whole number", value)
    return value


def _check_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(name, "a number", value)
    if not math.isfinite(value):
        raise _bad(name, "a finite number", value)
    return value if isinstance(value, float) else float(value)


def _check_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(name, "text (a quoted string)", value)
    return value


def _check_path(name: str, value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise _bad(name, "a path", value)
    return Path(value)


_SCALARS = {
    bool: _check_bool,
    int: _check_int,
    float: _check_float,
    str: _check_str,
    Path: _check_path,
}


def _check_tuple(name: str, value: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        raise _bad(name, "a list", value)
    if len(args) == 2 and args[1] is Ellipsis:
        kinds = [args[0]] * len(value)
    else:
        if len(value) != len(args):
            raise _bad(name, f"a list of {len(args)}", value)
        kinds = list(args)
    return tuple(_check(name, v, k) for v, k in zip(value, kinds, strict=True))

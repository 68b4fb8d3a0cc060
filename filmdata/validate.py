"""Checks for the frozen configs: every value's type from its annotation, no nan or inf,
and ranges; each failure is one `ConfigError` naming the option (and the config key) and
what to give instead. The configs call these in `__post_init__`, so a library user gets
the same checks as the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

from filmdata.errors import ConfigError


def label(config: object, key: str, options: Mapping[str, str] | None = None) -> str:
    """How a value is named in messages: '--threshold (ShotConfig.threshold)', or
    'ShotConfig.survey_frames' for a key without a CLI option."""
    name = f"{type(config).__name__}.{key}"
    option = (options or {}).get(key)
    return f"{option} ({name})" if option else name


def check_fields(config: object, options: Mapping[str, str] | None = None) -> None:
    """Check every field of the dataclass `config` against its annotation: numbers are
    numbers (finite ones: no nan or inf), text is text, nested configs are configs."""
    hints = _hints(type(config))
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        problem = _type_problem(value, hints[f.name])
        if problem:
            raise ConfigError(f"{label(config, f.name, options)} {value!r}: {problem}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_range(
    config: object, key: str, lo: float | None = None, hi: float | None = None, *,
    lo_open: bool = False, hi_open: bool = False, options: Mapping[str, str] | None = None,
    note: str = "",
) -> None:
    """`config.key` (a number or None: None passes) must lie in the interval."""
    value = getattr(config, key)
    if value is None:
        return
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    if not (above and below):
        within = "in " if lo is not None and hi is not None else ""
        raise ConfigError(f"{label(config, key, options)} {value!r}: give a number {within}"
                          f"{interval(lo, hi, lo_open=lo_open, hi_open=hi_open)}{note}")


def check_choice(
    config: object, key: str, choices: tuple[str, ...], options: Mapping[str, str] | None = None
) -> None:
    value = getattr(config, key)
    if value not in choices:
        raise ConfigError(
            f"{label(config, key, options)} {value!r}: choose one of {', '.join(choices)}"
        )


def interval(lo: float | None, hi: float | None, *, lo_open: bool = False,
             hi_open: bool = False) -> str:
    """'[0, 255]', '(0, 1]', '>= 0', '> 0', '<= 5'."""
    if hi is None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {_num(hi)}"
    return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _type_problem(value: Any, hint: Any) -> str:
    """What is wrong with `value` for the annotation `hint` ('' when nothing)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return ""
        hints = [a for a in args if a is not type(None)]
        return _type_problem(value, hints[0]) if len(hints) == 1 else ""
    if hint is bool:
        return "" if isinstance(value, bool) else "give true or false"
    if hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return "" if ok else "give a whole number"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "give a number"
        return "" if math.isfinite(value) else "give a finite number (not nan or inf)"
    if hint is str:
        return "" if isinstance(value, str) else "give text"
    if origin is tuple:
        if not isinstance(value, tuple) or len(value) != len(args):
            return f"give {len(args)} values"
        return next((p for v, a in zip(value, args, strict=True) if (p := _type_problem(v, a))),
                    "")
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return "" if isinstance(value, hint) else f"give a {hint.__name__}"
    return ""

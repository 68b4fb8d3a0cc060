"""Errors of the colorizer package: user mistakes, each with a message that says what to do."""

from __future__ import annotations


class ColorizerError(Exception):
    """Base class of every user-facing error raised by `colorizer`."""


class ConfigError(ColorizerError):
    """A configuration value is invalid (unknown architecture, bad size, ...).

    `key` names the option at fault when there is one, so that whoever settled the config
    can say where the value came from (a TOML file, the command line)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InputError(ColorizerError):
    """A tensor given to the library has the wrong shape or range."""


class DataError(ColorizerError):
    """A dataset image or manifest cannot be used (missing, unreadable, no kept rows)."""


class WeightsError(ColorizerError):
    """A weights file is missing, truncated, or not the kind of file that was expected."""

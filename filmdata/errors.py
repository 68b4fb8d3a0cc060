"""Errors of the filmdata package. Each message says what was wrong and how to fix it."""

from __future__ import annotations


class FilmDataError(Exception):
    """Base class for every error the CLI reports as one line."""


class FilmOpenError(FilmDataError):
    """The film path is missing, a directory, or cannot be opened."""


class NotAVideoError(FilmDataError):
    """The file is not a video, is empty, or has no video stream."""


class OutputError(FilmDataError):
    """The output folder cannot be created or written."""


class ConfigError(FilmDataError, ValueError):
    """An option has an impossible value."""


def describe_os_error(exc: OSError) -> str:
    """An operating-system error in a few words: what failed, and on which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    return f"{what} ({exc.filename})" if exc.filename else what

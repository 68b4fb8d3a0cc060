"""Errors of the survey package: user mistakes, each with a message that says what to do."""

from __future__ import annotations


class SurveyError(Exception):
    """Base class of every user-facing error raised by `survey`."""


class SurveyConfigError(SurveyError):
    """An option of `survey make`, `serve` or `report` is invalid."""


class SurveyNotFoundError(SurveyError):
    """The folder given holds no survey (or not a readable one)."""


class SurveyVersionError(SurveyError):
    """The survey was made by a version of filmcolor whose database this one cannot read."""


class SurveyExistsError(SurveyError):
    """`survey make` was pointed at a folder that already holds something."""


class SurveyInputError(SurveyError):
    """A frame or image the survey needs cannot be read, or there are none to pick."""

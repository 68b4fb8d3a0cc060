"""Errors of the shot detector."""

from __future__ import annotations


class DetectorError(ValueError):
    """The detector was set up or fed wrongly (a bad fps, frames out of order, an unknown
    method); the message says what to give instead."""

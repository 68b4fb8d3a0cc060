"""Fault-table rows: see tests/faults.py."""

from __future__ import annotations

from tests.faults import Fault

FAULTS: list[Fault] = []

"""Every command keeps its promise under faults: the tables of `faults_*.py`, walked.

Each row: a command line, a bad input or an operating-system fault made by its setup, the
exit status it must end with and the words its one stderr line must hold; some rows also
check that nothing done before was lost. See `tests/faults.py` for the harness.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import faults_colorizer, faults_data, faults_misc
from tests.faults import Fault, run_fault, running_as_root

TABLE: list[Fault] = [*faults_data.FAULTS, *faults_colorizer.FAULTS, *faults_misc.FAULTS]


def test_every_row_has_a_unique_name() -> None:
    names = [fault.name for fault in TABLE]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("fault", TABLE, ids=[fault.name for fault in TABLE])
def test_fault(
    fault: Fault, tmp_path: Path, assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "root-skip" in fault.tags and running_as_root():
        pytest.skip("permission faults cannot be made as root")
    run_fault(fault, tmp_path, assets, monkeypatch)

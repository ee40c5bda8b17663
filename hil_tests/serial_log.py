"""Saving a board's serial log when a test fails, next to the test report.

The `seat` fixture attaches its board to the test item (`attach`); the conftest's
`pytest_runtest_makereport` hook calls `save_for_report`, which writes the board's whole log
to <log dir>/<test>.serial.log for a failed setup, call or teardown. The log dir is
--hil-log-dir if given, else the directory of --junitxml's report, else artifacts/hil.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import pytest

__all__ = ["LOG_SOURCE", "LogSource", "attach", "log_dir", "log_path", "save", "save_for_report"]


class LogSource(Protocol):
    def serial_log_text(self) -> str: ...


LOG_SOURCE = pytest.StashKey[LogSource]()


def attach(node: pytest.Item, source: LogSource) -> None:
    """Name the board whose log to save if `node` fails (set before anything can fail)."""
    node.stash[LOG_SOURCE] = source


def log_dir(config: pytest.Config) -> Path:
    here = config.invocation_params.dir
    explicit: str | None = config.getoption("hil_log_dir", None)
    if explicit:
        return here / explicit
    junit: str | None = getattr(config.option, "xmlpath", None)
    if junit:
        return (here / junit).parent / "hil"
    return config.rootpath / "artifacts" / "hil"


def log_path(directory: Path, nodeid: str) -> Path:
    """<directory>/<module>.<test name>.serial.log, from a node id such as
    "hil_tests/test_ring.py::test_x[qemu]"."""
    path, _, name = nodeid.partition("::")
    stem = Path(path).stem
    safe = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{stem}.{name}" if name else stem).strip("_")
    return directory / f"{safe}.serial.log"


def save(directory: Path, nodeid: str, text: str) -> Path:
    path = log_path(directory, nodeid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# test: {nodeid}\n{text}", encoding="utf-8")
    return path


def save_for_report(item: pytest.Item, report: pytest.TestReport) -> Path | None:
    """Write the attached board's log if `report` is a failure; name the file in the report."""
    if not report.failed:
        return None
    source = item.stash.get(LOG_SOURCE, None)
    if source is None:
        return None
    try:
        text = source.serial_log_text()
    except Exception as exc:  # a broken board must not hide the failure being reported
        text = f"# the serial log could not be read: {exc!r}\n"
    path = save(log_dir(item.config), item.nodeid, text)
    report.sections.append(("serial log", f"{report.when}: the board's whole serial log: {path}"))
    return path

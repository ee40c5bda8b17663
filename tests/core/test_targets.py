"""The site's targets (issue 18, defect 1): one `[targets]` table in the core's settings,
used by the live KPIs, the daily report from the store and `seatlink core --report`, so
their figures are computed with the site's ring limit and service-level threshold."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.core.queries import daily_report
from gateway.core.report import Targets
from gateway.core.settings import CoreSettings, load_settings
from tests import target_day
from tests.target_day import DAY, DEFAULTS, SITE, SITE_TARGETS, figures

UTC = CoreSettings().tz


def core_toml(tmp: Path, extra: str) -> Path:
    path = tmp / "core.toml"
    path.write_text(f'site = "{SITE}"\nstore = "core.db"\n{extra}')
    return path


def test_the_targets_table_is_read_and_drives_the_live_settings(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:  # fmt: skip
    s = load_settings(core_toml(tmp_path, "[targets]\nring_limit = 2\nsl_threshold_s = 25\n"
                                          "service_level = 0.9\navg_acw_s = 45\n"))  # fmt: skip
    assert s.targets.targets() == Targets(ring_limit=2, sl_threshold_s=25.0, service_level=0.9,
                                          avg_acw_s=45.0)  # fmt: skip
    # what the worker builds its live KPIs from (gateway/core/service.py)
    assert (s.ring_limit, s.sl_threshold_s) == (2, 25.0)
    assert CoreSettings().targets.targets() == Targets()  # the seeds' by default
    monkeypatch.setenv("SEATLINK_CORE_TARGETS__RING_LIMIT", "4")
    assert load_settings(core_toml(tmp_path, "")).ring_limit == 4


@pytest.mark.parametrize(("extra", "named"), [
    ("[targets]\nring_limit = 0\n", "targets.ring_limit"),
    ("[targets]\nsl_threshold_s = -1\n", "targets.sl_threshold_s"),
    ("[targets]\nservice_level = 1.5\n", "targets.service_level"),
    ("[targets]\nwithin_ring_limit = -0.1\n", "targets.within_ring_limit"),
    ("[targets]\navg_talk_s = -5\n", "targets.avg_talk_s"),
    ("[targets]\nring_limits = 2\n", "targets.ring_limits"),
    ("ring_limit = 2\n", "[targets]"),  # the old place is refused, saying where it went
    ("sl_threshold_s = 25\n", "[targets]"),
])  # fmt: skip
def test_bad_targets_are_refused_naming_the_key(tmp_path: Path, extra: str, named: str) -> None:
    with pytest.raises(ValidationError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_settings(core_toml(tmp_path, extra))


def test_the_old_environment_names_are_refused_not_ignored(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:  # fmt: skip
    monkeypatch.setenv("SEATLINK_CORE_RING_LIMIT", "2")
    with pytest.raises(ValidationError, match="SEATLINK_CORE_TARGETS__RING_LIMIT"):
        load_settings(core_toml(tmp_path, ""))


def test_the_daily_report_from_the_store_uses_the_targets_given(store_url: str) -> None:
    target_day.fill(store_url)
    site = Targets(ring_limit=2, sl_threshold_s=25)
    report = daily_report(store_url, DAY, UTC, site=SITE, targets=site, now=DAY_END)
    assert figures(report.site_kpis) == SITE_TARGETS
    assert figures(report.queues["support"]) == SITE_TARGETS
    assert report.targets == site  # the verdicts are judged against the same values
    seeds = daily_report(store_url, DAY, UTC, site=SITE, targets=Targets(), now=DAY_END)
    assert figures(seeds.site_kpis) == DEFAULTS


DAY_END = target_day.DAY_START + 86400 + 3600


def test_seatlink_core_report_uses_the_configured_targets(tmp_path: Path) -> None:
    target_day.fill(tmp_path / "core.db")
    path = core_toml(tmp_path, "[targets]\nring_limit = 2\nsl_threshold_s = 25\n")
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "core", "-c", str(path),
                           "--report", DAY.isoformat(), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(
        (tmp_path / "out" / f"kpi-{SITE}-{DAY}.csv").read_text())))  # fmt: skip
    day = [r for r in rows if r["by"] == "site" and r["start"].startswith(f"{DAY}T00:00")
           and r["end"].startswith("2026-01-17T00:00")]  # fmt: skip
    assert len(day) == 1
    assert {k: float(day[0][k]) for k in SITE_TARGETS} == SITE_TARGETS
    html = (tmp_path / "out" / f"kpi-{SITE}-{DAY}.html").read_text()
    assert "Answered within 2 rings" in html and "answered within 25 s" in html

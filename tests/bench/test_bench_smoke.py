"""The benchmark still runs: a seconds-long pass of bench/run that must produce its table."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_a_table(tmp_path: Path) -> None:
    output = tmp_path / "table.md"
    done = subprocess.run([str(REPO / "bench" / "run"), "--smoke", "--output", str(output)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    table = output.read_text()
    assert table in done.stdout
    assert "| Measurement | bare ceiling | Flower 2.2 | celery-monitor |" in table
    lost_rows = [line for line in table.splitlines() if line.startswith("| sustained 500 ev/s")]
    assert lost_rows, table
    # Nothing published at this rate may be lost, by the ceiling or by the monitor.
    assert all(line.count("| 0 (0.0%)") == 2 for line in lost_rows), lost_rows
    assert "GET /api/tasks?limit=100 (median)" in table
    # The burst published as fast as one publisher can: nothing lost on Redis either.
    fast = [line for line in table.splitlines() if "as fast as one publisher can: events lost" in line]
    assert fast and all(line.count("| 0 (0.0%)") == 2 for line in fast), fast


def refused_in_one_line(*args: str) -> str:
    """bench/run's answer to bad options: exit status 2 and one line, returned."""
    done = subprocess.run([str(REPO / "bench" / "run"), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr


def test_bad_option_is_one_line_and_status_2() -> None:
    assert "unknown contender" in refused_in_one_line("--contenders", "nobody")


def test_clusters_run_writes_a_table_per_cluster(tmp_path: Path) -> None:
    """--clusters: one monitor on two clusters, a stream on each, then one cluster's broker stopped."""
    output = tmp_path / "clusters.md"
    done = subprocess.run([str(REPO / "bench" / "run"), "--clusters", "2", "--cluster-rates", "200", "--seconds", "2",
                           "--output", str(output)], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    table = output.read_text()
    rounds = [line for line in table.splitlines() if line.startswith("| 200 ev/s per cluster")]
    assert len(rounds) == 2, table
    # Nothing lost at this rate, every cluster caught up, every task counted under its cluster.
    steady, stopped = rounds
    assert "| 0 | 2 of 2 |" in steady, steady
    assert "c02's broker stopped half-way" in stopped and "| 0 | 1 of 1 others |" in stopped, stopped
    cells = [line.split("|") for line in table.splitlines() if line.startswith("| c01 |")]
    assert len(cells) == 2 and all(c[4].strip() == "0" for c in cells), cells
    tasks = cells[0][6].split("/")
    assert tasks[0].strip() == tasks[1].strip() != "0", cells[0]
    assert "c02: stopped after" in table and "connected: False" in table
    assert "c02's redis-server started again on its port: a probe event applied" in table


def test_clusters_needs_two() -> None:
    assert "at least 2 clusters" in refused_in_one_line("--clusters", "1")

"""`ledger projector`: the read models kept current by a process of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WAIT_S_MAX = 60


def ledger(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_S_MAX,
        check=True,
    )


def status(env: dict[str, str]) -> list[dict[str, int]]:
    rows: list[dict[str, int]] = json.loads(ledger(env, "projections", "status", "--json").stdout)
    return rows


def test_the_projector_process_catches_up_and_stops_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db",
        "LEDGER_KEY_DIR": str(tmp_path / "keys"),
    }
    ledger(env, "demo", "--no-serve")  # (it brings the read models up to date to show them)
    ledger(env, "fund", "open", "river-school", "--name", "河边小学基金", "--currency", "CNY",
           "--host", "示例公益基金会", "--committee", "甲", "--committee", "乙",
           "--actor", "admin")  # fmt: skip
    before = status(env)
    assert all(row["lag"] > 0 for row in before)  # the last write not projected yet

    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "projector"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S_MAX
        while time.monotonic() < deadline:
            rows = status(env)
            if all(row["lag"] == 0 and row["position"] == row["head"] for row in rows):
                break
            time.sleep(0.2)
        assert all(row["lag"] == 0 for row in rows), rows
        assert rows[0]["head"] == before[0]["head"] > 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=WAIT_S_MAX)
    assert process.returncode == 0, err
    assert "Traceback" not in err

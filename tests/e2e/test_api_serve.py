"""``ledger serve`` as a real process: a token from ``ledger token create``, a donation over
HTTP on 127.0.0.1, read back, then the server is stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ledger(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_served_ledger_records_a_donation_with_a_cli_token(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "LEDGER_KEY_DIR": str(tmp_path / "keys"),
    }
    ledger(env, "init")
    ledger(
        env, "fund", "open", "tea-village", "--name", "茶乡振兴基金", "--currency", "CNY",
        "--host", "示例公益基金会", "--committee", "甲", "--committee", "乙", "--actor", "admin",
    )  # fmt: skip
    token = ledger(
        env, "token", "create", "--name", "刘晓梅", "--role", "treasurer", "--fund", "tea-village"
    )
    secret = token.strip().splitlines()[-1]
    assert len(secret) == 43
    assert secret not in ledger(env, "token", "list")

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)

        created = httpx.post(
            f"{base}/api/funds/tea-village/donations",
            json={"amount": "66.60", "received_on": "2026-01-02", "channel": "wechat"},
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "serve-1"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        listed = httpx.get(f"{base}/api/funds/tea-village/donations", timeout=30).json()
        assert [d["receipt_no"] for d in listed["items"]] == [created.json()["receipt_no"]]
        fund = httpx.get(f"{base}/api/funds/tea-village", timeout=30).json()
        assert fund["figures"]["totals"]["received"] == "66.60"
        refused = httpx.post(
            f"{base}/api/funds/tea-village/donations",
            json={"amount": "1.00", "received_on": "2026-01-02", "channel": "wechat"},
            headers={"Idempotency-Key": "serve-2"},
            timeout=30,
        )
        assert refused.status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


CONCURRENT_OPENINGS = 20


def test_twenty_concurrent_openings_with_one_key_open_one_fund(tmp_path: Path) -> None:
    """One Idempotency-Key, twenty different slugs, all at once against a real server:
    exactly one fund is opened, one 201, and every other answer is 409
    idempotency-key-reused."""
    from concurrent.futures import ThreadPoolExecutor

    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "LEDGER_KEY_DIR": str(tmp_path / "keys"),
    }
    ledger(env, "init")
    secret = ledger(env, "token", "create", "--name", "周文华", "--role", "admin")
    secret = secret.strip().splitlines()[-1]
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    barrier = __import__("threading").Barrier(CONCURRENT_OPENINGS)

    def open_fund(i: int) -> httpx.Response:
        body = {
            "slug": f"fund-{i:02d}",
            "name": f"基金{i}",
            "currency": "CNY",
            "host": "示例公益基金会",
            "committee": ["甲", "乙"],
        }
        headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "one-key"}
        with httpx.Client(timeout=60) as client:
            barrier.wait(timeout=30)
            return client.post(f"{base}/api/funds", json=body, headers=headers)

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        with ThreadPoolExecutor(CONCURRENT_OPENINGS) as pool:
            answers = list(pool.map(open_fund, range(CONCURRENT_OPENINGS)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201] + [409] * (CONCURRENT_OPENINGS - 1), [r.text for r in answers]
        refused = [r.json()["type"] for r in answers if r.status_code == 409]
        assert set(refused) == {"idempotency-key-reused"}
        funds = httpx.get(f"{base}/api/funds", timeout=30).json()["items"]
        (winner,) = [r.json()["slug"] for r in answers if r.status_code == 201]
        assert [f["slug"] for f in funds] == [winner]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()

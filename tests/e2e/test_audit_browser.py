"""The donor's check in a real browser: Debian's chromium (never a downloaded one) loads the
check script from the ledger's own server and verifies a real receipt with WebCrypto; a
receipt whose proof or checkpoint was changed fails in the browser too."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_api_support import World, serve

from ledger.settings import Settings
from projections.audit import ensure_signing_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CHROMIUM = "/usr/bin/chromium"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
START_TIMEOUT_S = 20.0
PAGE_TIMEOUT_MS = 20_000

playwright_api = pytest.importorskip("playwright.sync_api")
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"no chromium at {CHROMIUM}", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[World, str, str]]:
    import uvicorn

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    signer = ensure_signing_key(tmp_path / "keys", Settings().audit_origin)
    with serve(url, tmp_path, lambda: NOW) as w:
        port = _free_port()
        config = uvicorn.Config(w.api, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the server did not start"
        try:
            yield w, f"http://127.0.0.1:{port}", signer.verifier.vkey
        finally:
            server.should_exit = True
            thread.join(timeout=START_TIMEOUT_S)


CHECK = """async ([receiptNo, vkey, tamper]) => {
  const receipt = await (await fetch(`/api/receipts/${receiptNo}`)).json();
  if (tamper === "proof") receipt.leaf_index += 1;
  if (tamper === "note") receipt.checkpoint = receipt.checkpoint.replace(/\\n(\\d+)\\n/,
      (m, n) => `\\n${Number(n) + 1}\\n`);
  return await LedgerReceipt.verifyReceipt(receipt, vkey);
}"""


def test_a_receipt_verifies_in_chromium(server: tuple[World, str, str]) -> None:
    w, base, vkey = server
    w.open_fund()
    gifts = [w.donate(f"{n}.00") for n in range(1, 8)]
    receipt_no = gifts[4]["receipt_no"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{base}/api/health")
            page.add_script_tag(url="/static/audit/verify-receipt.js")
            result: dict[str, Any] = page.evaluate(CHECK, [receipt_no, vkey, None])
            assert result["ok"] is True, result["checks"]
            names = [c["name"] for c in result["checks"]]
            assert names == ["key", "signature", "origin", "checkpoint", "leaf", "inclusion"]
            expected = w.client.get(f"/api/receipts/{receipt_no}").json()
            assert result["root"] == expected["root"]
            assert result["size"] == expected["tree_size"]

            bad_proof = page.evaluate(CHECK, [receipt_no, vkey, "proof"])
            assert bad_proof["ok"] is False
            assert bad_proof["checks"][-1]["name"] == "inclusion"
            assert bad_proof["checks"][-1]["ok"] is False
            bad_note = page.evaluate(CHECK, [receipt_no, vkey, "note"])
            assert bad_note["ok"] is False
            assert {"name": "signature", "ok": False} in [
                {"name": c["name"], "ok": c["ok"]} for c in bad_note["checks"]
            ]
            other_key = vkey.split("+")[0] + "+00000000+" + vkey.split("+", 2)[2]
            assert page.evaluate(CHECK, [receipt_no, other_key, None])["ok"] is False
        finally:
            browser.close()

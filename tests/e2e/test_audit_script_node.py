"""The browser check's proof algorithm (``verify-receipt.js``), run by Node's WebCrypto
against the ledger's own tree: every inclusion proof of every tree up to 64 leaves leads to
the root, and a proof with one hash changed does not."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger.audit.merkle import CompactTree, leaf_hash

SCRIPT = Path(__file__).parents[2] / "api" / "static" / "audit" / "verify-receipt.js"
NODE = shutil.which("node")
SIZE_MAX = 64
TIMEOUT_S = 120

RUNNER = """
const fs = require("fs");
globalThis.window = globalThis;
eval(fs.readFileSync(process.argv[2], "utf8"));
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
const b = (t) => Uint8Array.from(Buffer.from(t, "base64"));
(async () => {
  const out = [];
  for (const c of cases) {
    let root;
    try {
      root = await LedgerReceipt.rootFromInclusionProof(b(c.leaf), c.index, c.size,
                                                        c.proof.map(b));
      out.push(Buffer.from(root).toString("base64"));
    } catch (e) { out.push("error: " + e.message); }
  }
  console.log(JSON.stringify(out));
})();
"""


@pytest.mark.skipif(NODE is None, reason="no node")
def test_every_inclusion_proof_up_to_64_leaves_leads_to_the_root(tmp_path: Path) -> None:
    leaves = [leaf_hash(f"leaf {i}".encode()) for i in range(SIZE_MAX)]
    tree = CompactTree(leaves)
    cases, expected = [], []
    b64 = lambda h: base64.b64encode(h).decode()  # noqa: E731
    for size in range(1, SIZE_MAX + 1):
        root = b64(tree.root(size))
        for index in range(size):
            proof = [b64(h) for h in tree.inclusion_proof(index, size)]
            cases.append({"leaf": b64(leaves[index]), "index": index, "size": size,
                          "proof": proof})  # fmt: skip
            expected.append(root)
            if proof:
                bad = [b64(b"\x00" * 32), *proof[1:]]
                cases.append({"leaf": b64(leaves[index]), "index": index, "size": size,
                              "proof": bad})  # fmt: skip
                expected.append(None)
    runner = tmp_path / "run.js"
    runner.write_text(RUNNER)
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(runner), str(SCRIPT)], input=json.dumps(cases), capture_output=True,
        text=True, timeout=TIMEOUT_S, check=True,
    )  # fmt: skip
    got = json.loads(done.stdout)
    assert len(got) == len(expected)
    for case, want, answer in zip(cases, expected, got, strict=True):
        if want is None:
            assert answer != tree.root(case["size"]), case
        else:
            assert answer == want, case

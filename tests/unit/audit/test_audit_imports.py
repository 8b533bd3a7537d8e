"""The verifier needs only the standard library, ``cryptography`` and the domain's money rule
(DESIGN §6): an auditor runs it without the rest of the ledger."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import ledger.audit

PACKAGE = Path(ledger.audit.__file__).parent
ALLOWED_OWN = {"ledger.audit", "ledger.domain.figures"}


def test_the_audit_package_imports_nothing_else_of_the_ledger() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "ledger":
                    assert any(name == a or name.startswith(f"{a}.") for a in ALLOWED_OWN), (
                        f"{path.name} imports {name}"
                    )
                else:
                    assert top in sys.stdlib_module_names or top == "cryptography", (
                        f"{path.name} imports {name}"
                    )


def test_loading_the_verifier_loads_no_other_third_party_module() -> None:
    script = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import ledger.audit.verify, ledger.audit.export, ledger.audit.checkpoint\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", script], timeout=60))
    others = {
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in {"cryptography", "_cffi_backend", "_openssl"}
        and not any(name == a or name.startswith(f"{a}.") for a in ALLOWED_OWN)
    }
    assert others <= {"ledger", "ledger.domain"}, sorted(others)

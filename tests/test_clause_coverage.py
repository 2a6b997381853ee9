"""Every spec clause is cited by at least one conformance test (and every citation is valid)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conformance.spec.registry import load_specs

ROOT = Path(__file__).resolve().parent.parent


def test_every_clause_is_cited_by_a_conformance_test(tmp_path):
    report_path = tmp_path / "collected.json"
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance/tests", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--device", "cpu", "--conformance-report", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 0, f"collection failed (invalid citations?):\n{process.stdout[-3000:]}{process.stderr[-2000:]}"
    report = json.loads(report_path.read_text())
    uncited = [c["id"] for c in report["clauses"] if not any(d["tests"] for d in c["devices"].values())]
    assert not uncited, f"clauses cited by no conformance test: {uncited}"
    assert {c["id"] for c in report["clauses"]} == set(load_specs())

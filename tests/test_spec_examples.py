"""Every clause's minimal example runs on the installed torch: the specs cannot drift from torch."""

from __future__ import annotations

import pytest
import torch

from conformance.spec.registry import load_specs

CLAUSES = load_specs()


@pytest.mark.parametrize("clause_id", sorted(CLAUSES))
def test_clause_example_runs(clause_id):
    clause = CLAUSES[clause_id]
    if not clause.applies_to(torch.__version__):
        pytest.skip(f"{clause_id} applies to torch {clause.versions}, installed torch is {torch.__version__}")
    namespace = {"torch": torch, "nn": torch.nn, "pytest": pytest}
    code = compile(clause.example, f"{clause.path.name}:{clause_id} example", "exec")
    try:
        exec(code, namespace)  # noqa: S102 - the project's own spec examples
    except Exception as exc:  # noqa: BLE001 - reported with the clause's location
        pytest.fail(f"the example of {clause_id} ({clause.location}) fails on torch {torch.__version__}: {type(exc).__name__}: {exc}")
    finally:
        torch.set_grad_enabled(True)

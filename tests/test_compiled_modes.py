"""Compiled modes (``--mode compile:BACKEND``): a compiled pass counts only if the program really compiled.

Driven through ``pytester`` like ``tests/test_plugin.py``: each test writes a
throwaway spec and conformance tests, runs them in eager and compiled modes and
reads the report.  The ``eager`` backend is used (dynamo only: the fastest to
compile); what is checked is the plugin's judgement, not the backend's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

# pytester's in-process runs drop the modules imported since the test began; torch._dynamo registers torch
# libraries when imported, which cannot happen twice in a process: import it here, before any run.
if hasattr(torch, "compile"):
    import torch._dynamo  # noqa: F401

from conformance.spec.expectations import MODES as EXPECTATION_MODES
from conformance.testlib.modes import MODE_NAMES, Mode
from tests.test_plugin import (  # noqa: F401 (fixtures)
    USAGE_ERROR,
    _keep_outer_hypothesis_profile,
    clause_entry,
    clause_md,
    run_report,
    suite,
)

pytestmark = pytest.mark.skipif(not hasattr(torch, "compile"), reason="torch.compile needs torch >= 2.0")

REPO = Path(__file__).resolve().parent.parent
COMPILED = "compile:eager"
TARGET = f"cpu@{COMPILED}"

CLAUSES = (
    clause_md("WHOLE-1", "compiles whole"),
    clause_md("BREAK-1", "breaks the graph"),
    clause_md("IGNORES-1", "ignores the mode"),
    clause_md("LIMIT-1", "falls back at the recompile limit"),
    clause_md("DIVERGES-1", "fails only when compiled"),
    clause_md("DIVERGES-2", "fails only when compiled, expectedly"),
    clause_md("AFTER-1", "runs after a failure"),
    clause_md("RAISES-1", "raises its own error when compiled"),
    clause_md("NUMPY-1", "cannot be compiled").replace(
        "- **Basis**: `documented`",
        "- **Basis**: `documented`\n- **Compiled**: `not applicable` — numpy() leaves the tensor program",
    ),
)

TESTS = """
import torch._dynamo

@pytest.mark.spec("WHOLE-1")
def test_whole(device, mode):
    x = torch.ones(3, device=device, requires_grad=True)
    y = mode.run(lambda t: (t * 2).sin(), x)
    y.sum().backward()
    assert x.grad is not None

@pytest.mark.spec("BREAK-1")
def test_graph_break(device, mode):
    def program(t):
        t = t * 2
        torch._dynamo.graph_break()
        return t + 1
    assert torch.equal(mode.run(program, torch.ones(2, device=device)), torch.full((2,), 3.0, device=device))

@pytest.mark.spec("IGNORES-1")
def test_ignores_the_mode(device):
    assert (torch.ones(2, device=device) + 1).sum().item() == 4

@pytest.mark.spec("LIMIT-1")
def test_recompile_limit(device, mode):
    f = mode.compile(lambda t: t * 2)
    limits = {name: 1 for name in ("recompile_limit", "cache_size_limit") if hasattr(torch._dynamo.config, name)}
    with torch._dynamo.config.patch(limits):
        for dtype in (torch.float32, torch.float64, torch.int64):
            f(torch.ones(2, dtype=dtype, device=device))

@pytest.mark.spec("DIVERGES-1")
def test_diverges(device, mode):
    assert not torch.compiler.is_compiling()  # harness code: eager here
    inside = mode.run(lambda t: t + int(torch.compiler.is_compiling()), torch.zeros(1, device=device))
    assert inside.item() == 0, f"the program saw is_compiling() in {mode}"

@pytest.mark.spec("DIVERGES-2")
def test_diverges_too(device, mode):
    inside = mode.run(lambda t: t + int(torch.compiler.is_compiling()), torch.zeros(1, device=device))
    assert inside.item() == 0, f"the program saw is_compiling() in {mode}"

@pytest.mark.spec("RAISES-1")
def test_raises(device, mode):
    leaf = torch.ones(2, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place operation"):
        mode.run(lambda t: t.add_(1), leaf)

@pytest.mark.spec("AFTER-1")
def test_after_a_failure(device, mode):
    assert mode.run(lambda t: t.cos(), torch.zeros(1, device=device)).item() == 1

@pytest.mark.spec("NUMPY-1")
def test_numpy(device, mode):
    assert torch.ones(1).numpy()[0] == 1
"""


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    """One run of the throwaway suite in eager and compiled mode, in a subprocess: dynamo imports modules and
    registers torch libraries lazily, which an in-process pytester run would import twice."""
    root = tmp_path_factory.mktemp("compiled_suite")
    (root / "specs").mkdir()
    (root / "specs" / "area.md").write_text("# Test area\n\n" + "\n".join(CLAUSES), encoding="utf-8")
    (root / "pytest.ini").write_text("[pytest]\nconformance_testpaths = .\n", encoding="utf-8")
    (root / "test_conformance.py").write_text("import pytest\nimport torch\n" + textwrap.dedent(TESTS), encoding="utf-8")
    (root / "exp.toml").write_text(
        '[[expected_failure]]\nclause = "DIVERGES-2"\ntorch = ">=2.0"\ndevices = ["cpu"]\n'
        f'modes = ["{COMPILED}"]\nreproduction = "test_diverges_too"\nreason = "compiled code sees is_compiling()"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CONFORMANCE_PROFILE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conformance.plugin", "--specs-dir=specs", "-p", "no:cacheprovider",
         "--device=cpu", f"--mode=eager,{COMPILED}", "--expectations=exp.toml", "--conformance-report=out.json", "-rs"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    return result, json.loads((root / "out.json").read_text(encoding="utf-8"))


def outcome(report: dict, clause_id: str, target: str) -> dict:
    return clause_entry(report, clause_id)["devices"][target]


def test_every_clause_has_an_outcome_per_device_and_mode(compiled_run):
    result, report = compiled_run
    assert report["modes"] == ["eager", COMPILED]
    assert report["devices"] == ["cpu", TARGET]
    for clause in report["clauses"]:
        assert set(clause["devices"]) == {"cpu", TARGET}, clause["id"]
        assert clause["devices"]["cpu"]["outcome"] == "passed", clause["id"]
    assert f"  {TARGET}: 1 failed, 1 known failure, 3 not compiled, 1 not applicable, 3 passed" in result.stdout


def test_a_graph_break_is_not_a_compiled_pass(compiled_run):
    """The self-test the issue asks for: a forced graph break must not read as passed."""
    _, report = compiled_run
    record = outcome(report, "BREAK-1", TARGET)
    assert record["outcome"] == "not compiled"
    assert record["reason"].startswith("graph break (1 in all): ")
    assert record["device"] == "cpu" and record["mode"] == COMPILED
    assert outcome(report, "WHOLE-1", TARGET)["outcome"] == "passed"


def test_a_test_that_compiles_nothing_is_not_a_compiled_pass(compiled_run):
    _, report = compiled_run
    record = outcome(report, "IGNORES-1", TARGET)
    assert (record["outcome"], record["reason"]) == (
        "not compiled",
        "the test compiled no program in this mode (its user program does not go through the mode)",
    )


def test_an_eager_fallback_at_the_recompile_limit_is_not_a_compiled_pass(compiled_run):
    _, report = compiled_run
    record = outcome(report, "LIMIT-1", TARGET)
    assert record["outcome"] == "not compiled"
    assert record["reason"].startswith("dynamo ran 1 frame(s) eagerly: ")


def test_a_program_raising_its_own_error_while_traced_is_a_compiled_pass(compiled_run):
    """Dynamo counts a frame that raised as not compiled; it is no eager fallback: the compiled call raised."""
    _, report = compiled_run
    assert outcome(report, "RAISES-1", TARGET)["outcome"] == "passed"


def test_a_divergence_fails_the_compiled_target_only_and_the_next_test_is_unaffected(compiled_run):
    result, report = compiled_run
    failed = outcome(report, "DIVERGES-1", TARGET)
    assert failed["outcome"] == "failed" and "saw is_compiling() in compile:eager" in failed["message"]
    assert outcome(report, "AFTER-1", TARGET)["outcome"] == "passed"
    assert f"VIOLATED DIVERGES-1 [{TARGET}]" in result.stdout


def test_the_spec_field_makes_a_clause_not_applicable_in_compiled_modes_only(compiled_run):
    _, report = compiled_run
    record = outcome(report, "NUMPY-1", TARGET)
    assert record["outcome"] == "not applicable"
    assert record["reason"] == "NUMPY-1 is not applicable in compiled modes: numpy() leaves the tensor program"


def test_an_expectation_limited_to_a_mode_marks_only_that_mode(compiled_run):
    _, report = compiled_run
    assert outcome(report, "DIVERGES-2", TARGET)["outcome"] == "known failure"
    assert outcome(report, "DIVERGES-2", "cpu")["outcome"] == "passed"
    (applied,) = report["expectations"]["applied"]
    assert applied["modes"] == [COMPILED] and applied["matched"] == ["test_conformance.py::test_diverges_too[cpu-compile:eager]"]


def test_an_eager_only_run_keeps_its_test_ids_and_report_layout(suite):
    suite.write_specs(*CLAUSES)
    suite.write_tests(TESTS)
    _, report = run_report(suite, "--device=cpu", "--clause=NUMPY-1")
    assert report["devices"] == ["cpu"] and report["modes"] == ["eager"]
    assert outcome(report, "NUMPY-1", "cpu")["tests"] == ["test_conformance.py::test_numpy[cpu]"]


def test_an_unknown_mode_is_a_usage_error(suite):
    result = suite.run("--mode=compile:tvm")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown --mode 'compile:tvm'; known: eager, compile:eager, compile:aot_eager, compile:inductor*"])


def test_mode_objects_compile_only_when_compiled():
    def program(t):
        return t

    assert Mode("eager").compile(program) is program and not Mode("eager").compiled
    assert Mode("compile:aot_eager").backend == "aot_eager"
    with pytest.raises(ValueError, match="unknown mode 'compile:tvm'"):
        Mode("compile:tvm")


def test_the_expectations_file_knows_the_same_modes_as_the_plugin():
    assert EXPECTATION_MODES == MODE_NAMES


def test_a_tests_compilations_do_not_accumulate_in_the_shared_aot_backends(monkeypatch):
    """torch <= 2.4 nests a backward-compiler wrapper in the shared aot_eager object per compilation (a
    RecursionError after ~490 in one process, pytorch/pytorch#93935): the plugin restores the backends' kwargs
    after each compiled test."""
    from conformance.plugin import modes as plugin_modes

    class FakeAotBackend:
        def __init__(self):
            self.kwargs = {"bw_compiler": "original"}

    backend = FakeAotBackend()
    monkeypatch.setattr(plugin_modes, "_aot_autograd_backends", lambda: [backend])
    with plugin_modes._aot_backends_isolated():
        backend.kwargs["bw_compiler"] = ("wrapper of", backend.kwargs["bw_compiler"])
        backend.kwargs["added"] = True
    assert backend.kwargs == {"bw_compiler": "original"}


_GUARD_LATENCY_CHECK = """
import torch, torch._dynamo
import torch._dynamo.guards as guards
from torch._dynamo.utils import counters
from conformance.plugin import modes as plugin_modes

original = getattr(guards, "profile_guard_manager", None)
with plugin_modes._guard_latency_unmeasured():
    if original is not None:
        assert guards.profile_guard_manager is plugin_modes._unmeasured_guard_latency
    double = torch.compile(lambda t: t * 2, backend="eager")
    assert torch.equal(double(torch.ones(2)), torch.full((2,), 2.0))
    assert torch.equal(double(torch.ones(2, dtype=torch.float64)), torch.full((2,), 2.0, dtype=torch.float64))
    assert counters["frames"]["ok"] == 2, f"the dtype guard should fail and compile again: {dict(counters['frames'])}"
assert getattr(guards, "profile_guard_manager", None) is original
print("ok")
"""


def test_compiled_tests_skip_only_dynamos_guard_latency_measurement():
    """The plugin times no guard latency in compiled tests (a compile metric that flushes the CPU cache per frame);
    the guards are still built and checked: a call that fails them recompiles.  Restored after the block.  In a
    subprocess: compiling imports torch modules that pytester's in-process runs of other tests may have dropped, and
    some of them cannot be imported twice in one process."""
    process = subprocess.run([sys.executable, "-c", _GUARD_LATENCY_CHECK], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0 and process.stdout.strip().endswith("ok"), process.stdout[-2000:] + process.stderr[-3000:]

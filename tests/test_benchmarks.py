"""The benchmarks: they run, cite clauses, skip absent devices, and their comparisons catch a slowed build.

The slowed builds are in ``tests/slowdowns.py``.  Benchmark runs here use a
short ``--benchmark-max-time`` and a few benchmarks (``-k``): enough rounds for
a stable median of calls that take microseconds, against slowdowns of 0.2 ms
(``item()``, a call of about 0.3 us) and 2 ms (``no_grad``, around a forward
of about 0.1 ms).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import conformance.plugin
from conformance.plugin.devices import status_in_run
from tests.slowdowns import SLOWDOWNS

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "conformance" / "benchmarks"
SHORT = ("--benchmark-max-time=0.1",)


def run_benchmarks(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", str(BENCHMARKS), "-p", "no:cacheprovider", "-rs", *args]
    # not PYTEST_XDIST_WORKER & co. when the self-tests run under xdist: pytest-benchmark would take the child
    # run for an xdist worker and disable every benchmark in it
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def output(process: subprocess.CompletedProcess) -> str:
    return process.stdout + process.stderr


def test_every_benchmark_runs_and_accelerators_skip_with_a_reason(tmp_path):
    report = tmp_path / "conformance-report.json"
    process = run_benchmarks("--benchmark-disable", f"--conformance-report={report}", cwd=tmp_path)
    text = output(process)
    assert process.returncode == 0, text[-3000:]
    # 22 on the CPU, the same 22 on the emulated device (a default device where no accelerator is)
    # and on cuda and mps, absent here
    emulated = status_in_run("emu", explicit=False).available
    assert ("44 passed, 44 skipped" if emulated else "22 passed, 66 skipped") in text, text[-1500:]
    assert "cuda not available: torch.cuda.is_available() is False" in text
    assert "mps not available" in text
    assert not report.exists(), "a benchmark run judges nothing: it must not write a conformance report"
    assert "VERDICT" not in text


@pytest.fixture
def benchmark_dir(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway benchmarks directory that the plugin treats as the suite's own."""
    directory = pytester.path / "benchmarks"
    directory.mkdir()
    monkeypatch.setattr(conformance.plugin.run_state, "PACKAGE_BENCHMARKS", directory.resolve())
    return directory


def test_a_benchmark_citing_no_clause_is_a_usage_error(pytester, benchmark_dir):
    (benchmark_dir / "test_uncited.py").write_text("def test_fast(benchmark):\n    benchmark(lambda: None)\n")
    result = pytester.runpytest("-p", "conformance.plugin", str(benchmark_dir), "--benchmark-disable")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "benchmark cites no clause" in result.stderr.str()


def test_a_benchmark_citing_an_unknown_clause_is_a_usage_error(pytester, benchmark_dir):
    source = "import pytest\n@pytest.mark.spec('NOPE-1')\ndef test_fast(benchmark):\n    benchmark(lambda: None)\n"
    (benchmark_dir / "test_unknown.py").write_text(source)
    result = pytester.runpytest("-p", "conformance.plugin", str(benchmark_dir), "--benchmark-disable")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cites unknown clause ID(s) NOPE-1" in result.stderr.str()


def test_a_benchmark_of_a_clause_outside_its_version_range_is_skipped(pytester, benchmark_dir):
    source = textwrap.dedent(
        """
        import pytest

        @pytest.mark.spec("ACCUM-7")  # zero_grad's pre-2.0 default
        def test_old_default(benchmark):
            benchmark(lambda: None)
        """
    )
    (benchmark_dir / "test_versioned.py").write_text(source)
    result = pytester.runpytest("-p", "conformance.plugin", str(benchmark_dir), "--benchmark-disable", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*ACCUM-7 applies to torch <2.0, installed torch is*"])


def test_compare_fail_flags_a_slowed_build_and_not_an_unchanged_one(tmp_path):
    storage = f"--benchmark-storage=file://{tmp_path}"
    baseline = run_benchmarks("-k", "test_item", "--device", "cpu", "--benchmark-save=baseline", storage, *SHORT)
    assert baseline.returncode == 0, output(baseline)[-3000:]
    saved = list(tmp_path.rglob("0001_baseline.json"))
    assert len(saved) == 1, list(tmp_path.rglob("*"))

    # The same build compared with a generous limit: no false alarm.
    compare = ("--benchmark-compare=0001", "--benchmark-compare-fail=median:300%", storage, *SHORT)
    unchanged = run_benchmarks("-k", "test_item", "--device", "cpu", *compare)
    assert unchanged.returncode == 0, output(unchanged)[-3000:]
    assert "Performance has regressed" not in output(unchanged)

    # A build whose item() is 0.2 ms slower (several hundred times the call itself).
    slowed = run_benchmarks("-k", "test_item", "--device", "cpu", "-p", "tests.slowdowns", "--slowdown", "item_waits", *compare)
    text = output(slowed)
    assert slowed.returncode != 0, text[-3000:]
    assert "Performance has regressed" in text
    for name in ("test_item[cpu-t.item() (no grad)]", "test_item[cpu-loss.item() (requires grad)]"):
        assert re.search(re.escape(name) + r" \(0001_\w*\) - Field 'median' has failed", text), text[-3000:]


def test_ratio_gate_flags_a_slowed_no_grad_across_runs(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    selection = ("-k", "test_forward and mlp", "--device", "cpu", *SHORT)
    first = run_benchmarks(*selection, f"--benchmark-json={old}")
    assert first.returncode == 0, output(first)[-3000:]
    assert "autograd benchmark ratios" in first.stdout and "no_grad / grad" in first.stdout
    second = run_benchmarks(*selection, "-p", "tests.slowdowns", "--slowdown", "no_grad_enter_waits", f"--benchmark-json={new}")
    assert second.returncode == 0, output(second)[-3000:]

    gate = subprocess.run(
        # A limit well above run-to-run noise, well below the slowdown (about +2000%).
        [sys.executable, "-m", "conformance", "ratios", str(old), str(new), "--max-increase", "300"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert gate.returncode == 1, gate.stdout + gate.stderr
    flagged = [line for line in gate.stdout.splitlines() if "over the limit" in line]
    assert len(flagged) == 1 and "no_grad / grad" in flagged[0], gate.stdout

    saved = json.loads(old.read_text())
    assert saved["autograd_conformance"]["torch"]
    assert {r["variant"] for r in saved["autograd_conformance"]["ratios"]} == {"no_grad", "inference_mode"}
    notes = [b["extra_info"]["autograd_conformance"] for b in saved["benchmarks"]]
    assert {n["variant"] for n in notes} == {"grad", "no_grad", "inference_mode"}
    grad = next(n for n in notes if n["variant"] == "grad")
    assert grad["memory"]["saved_tensors"] > 0 and grad["memory"]["saved_bytes"] > 0
    assert all(n["memory"]["saved_tensors"] == 0 for n in notes if n["variant"] != "grad")


def test_every_slowdown_names_a_comparison_the_benchmarks_have():
    sources = "\n".join(path.read_text() for path in BENCHMARKS.glob("test_*.py"))
    for slowdown in SLOWDOWNS.values():
        assert slowdown.slows in sources, f"slowdown {slowdown.name} regresses {slowdown.slows!r}, which no benchmark measures"

"""The kill matrix: every mutant against the tests of every clause, in one pytest session.

``pytest conformance/tests -p tests.killmatrix --kill-matrix PATH [-n 2]`` runs
each test once as usual (the *baseline*, reported as usual), then once under
each mutant of ``tests/mutants/`` that could change its outcome, applying the
mutant's patch around that one run and undoing it after.  It writes, per
mutant: killed or not (some test failed), *precise* or not (every clause the
mutant names in ``breaks`` failed, with a message naming that clause), and the
*collateral* (other clauses that failed); per clause, the mutants that kill it.

A mutant runs against the tests of the clauses it names with the ``mutation``
profile's 10 examples, and against any other test with 3 (``--kill-collateral-examples``):
the first decide *precise*; a failure of either counts for *killed*, of the
others for *collateral*.  ``--kill-collateral-examples 0`` runs no collateral
runs at all: *killed*, *precise* and each clause's killers come out the same
(they are decided by the tests of the clauses a mutant names), the collateral
is not measured, and the matrix takes a fraction of the time (the self-test's
setting; the collateral figures come from a full run).

Which mutants could change a test's outcome is traced, not guessed: each
mutant's *footprint* (the attributes its ``apply`` sets) is recorded without
applying it, every attribute of every footprint is replaced for the whole
session by a transparent spy, and a mutant runs against a test only if the
test's baseline run touched its footprint.  The hypothesis profile is
derandomized (``mutation``: the ``ci`` examples, 10 per test, no shrinking), so
a test that never reached a patched attribute would run exactly the same under
the mutant: skipping it changes no verdict.  The baseline passing with the
spies in place shows they are transparent.

Runs under pytest-xdist: each worker writes its part (``PATH.gwN``) and the
controller merges them into ``PATH``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import re
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable

import pytest
from hypothesis import settings
from _pytest.monkeypatch import derive_importpath
from _pytest.runner import runtestprotocol

from conformance.plugin import state as autograd_state
from tests.mutants import MUTANTS, Mutant, load_mutation_profile

SPEC_MARKER = "spec"
_VIOLATED = re.compile(r"\b([A-Z]+-\d+) violated\b")

#: a footprint entry that cannot be spied on: every test counts as touching it
ALWAYS = ("*", "always")


# ----------------------------------------------------------------------------- footprints


class _RecordingPatch(pytest.MonkeyPatch):
    """A MonkeyPatch that notes what would be set, and sets nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[tuple[Any, str]] = []

    def setattr(self, target, name, value=None, raising: bool = True) -> None:  # type: ignore[override]
        if isinstance(target, str):  # the dotted form: setattr("pkg.mod.attr", value)
            name, target = derive_importpath(target, raising)
        self.targets.append((target, name))

    def setitem(self, dic, name, value) -> None:  # type: ignore[override]
        self.targets.append(ALWAYS)

    def delattr(self, target, name=None, raising: bool = True) -> None:  # type: ignore[override]
        self.targets.append(ALWAYS)

    def setenv(self, name, value, prepend=None) -> None:  # type: ignore[override]
        self.targets.append(ALWAYS)


def footprint(mutant: Mutant) -> frozenset:
    recorder = _RecordingPatch()
    mutant.apply(recorder)
    return frozenset(recorder.targets)


# ----------------------------------------------------------------------------- spies


class _Tracer:
    """The set of footprint entries touched by the test running now (None between tests)."""

    touched: set | None = None

    @classmethod
    def hit(cls, key: Hashable) -> None:
        if cls.touched is not None:
            cls.touched.add(key)


def _spy(key: tuple[Any, str]):
    """A stand-in for ``getattr(*key)`` that behaves the same and notes each use; None if none can be made."""
    target, name = key
    raw = inspect.getattr_static(target, name)
    hit = functools.partial(_Tracer.hit, key)
    if isinstance(raw, type):
        def __init__(self, *args, **kwargs):
            hit()
            raw.__init__(self, *args, **kwargs)

        return type(raw.__name__, (raw,), {"__init__": __init__, "__module__": raw.__module__, "__qualname__": raw.__qualname__})
    if isinstance(raw, types.ModuleType):
        return _ModuleSpy(raw, hit)
    if isinstance(raw, (staticmethod, classmethod)):
        inner = raw.__func__

        @functools.wraps(inner)
        def wrapped(*args, **kwargs):
            hit()
            return inner(*args, **kwargs)

        return type(raw)(wrapped)
    if hasattr(raw, "__get__") and (hasattr(raw, "__set__") or isinstance(raw, property)) and not callable(raw):
        # a data descriptor (property, getset descriptor): Tensor.grad, Tensor.data
        def fget(self):
            hit()
            return raw.__get__(self, type(self))

        def fset(self, value):
            hit()
            raw.__set__(self, value)

        def fdel(self):
            hit()
            raw.__delete__(self)

        return property(fget, fset, fdel, getattr(raw, "__doc__", None))
    if callable(raw):
        @functools.wraps(raw)
        def wrapped(*args, **kwargs):
            hit()
            return raw(*args, **kwargs)

        return wrapped
    return None


class _ModuleSpy(types.ModuleType):
    """A module stand-in: attribute reads note a use and come from the real module."""

    def __init__(self, real: types.ModuleType, hit) -> None:
        super().__init__(real.__name__, real.__doc__)
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_hit", hit)

    def __getattr__(self, name: str):
        self._hit()
        return getattr(self._real, name)


# ----------------------------------------------------------------------------- results


@dataclass
class _Run:
    """What one worker saw: per mutant, the tests it ran against and those that failed."""

    tests_run: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[dict]] = field(default_factory=dict)
    baseline: dict[str, dict] = field(default_factory=dict)  # nodeid -> {"outcome", "cites"}
    seconds: float = 0.0
    collateral_examples: int = 3

    def to_json(self) -> dict:
        return {
            "tests_run": self.tests_run, "failures": self.failures, "baseline": self.baseline, "seconds": self.seconds,
            "collateral_examples": self.collateral_examples,
        }  # fmt: skip


def _outcome(reports) -> tuple[str, str]:
    """'failed' (with its message), 'passed', 'skipped' or 'xfailed' for one run's reports."""
    for report in reports:
        if report.failed:
            return "failed", report.longreprtext
    if any(hasattr(report, "wasxfail") for report in reports):
        return "xfailed", ""
    if any(report.skipped for report in reports):
        return "skipped", ""
    return "passed", ""


class KillMatrixPlugin:
    def __init__(self, config: pytest.Config, mutants: dict[str, Mutant]) -> None:
        self.config = config
        self.mutants = mutants
        self.collateral_examples = int(config.getoption("kill_collateral_examples"))
        self.footprints = {name: footprint(m) for name, m in mutants.items()}
        self.run = _Run(
            tests_run={name: 0 for name in mutants}, failures={name: [] for name in mutants},
            collateral_examples=self.collateral_examples,
        )  # fmt: skip
        self._spies = pytest.MonkeyPatch()
        self._always: set[str] = set()
        self._start = time.perf_counter()

    def install_spies(self) -> None:
        spied: set = set()
        for name, keys in self.footprints.items():
            for key in keys:
                if key == ALWAYS:
                    self._always.add(name)
                    continue
                if key in spied:
                    continue
                spy = _spy(key)
                if spy is None:
                    self._always.add(name)
                    continue
                self._spies.setattr(key[0], key[1], spy)
                spied.add(key)
        # a footprint key that could not be spied makes its mutant run everywhere
        for name, keys in self.footprints.items():
            if any(key != ALWAYS and key not in spied for key in keys):
                self._always.add(name)

    def remove_spies(self) -> None:
        self._spies.undo()

    def candidates(self, touched: set) -> list[str]:
        return [name for name, keys in self.footprints.items() if name in self._always or keys & touched]

    def runs_for(self, touched: set, cited: list[str]) -> list[tuple[str, int | None]]:
        """The mutant runs a passing test gets: (mutant, examples), None for the profile's; the tests of the clauses
        a mutant names always, the others with ``--kill-collateral-examples`` examples (none when that is 0)."""
        runs = []
        for name in self.candidates(touched):
            if set(cited) & set(self.mutants[name].breaks):
                runs.append((name, None))
            elif self.collateral_examples > 0:
                runs.append((name, self.collateral_examples))
        return runs

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        _Tracer.touched = touched = set()
        try:
            # nextitem=item.parent: tear down the test's own fixtures only, so it can run again below
            baseline = runtestprotocol(item, nextitem=item.parent, log=True)
        finally:
            _Tracer.touched = None
        outcome, _ = _outcome(baseline)
        cited = sorted({cid for mark in item.iter_markers(SPEC_MARKER) for cid in mark.args})
        self.run.baseline[item.nodeid] = {"outcome": outcome, "cites": cited}
        if outcome == "passed":
            for name, examples in self.runs_for(touched, cited):
                self._run_mutant(item, name, cited, examples=examples)
        item.session._setupstate.teardown_exact(nextitem)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _run_mutant(self, item: pytest.Item, name: str, cited: list[str], *, examples: int | None) -> None:
        """Run ``item`` once under mutant ``name``; ``examples`` caps a property test's examples (None: the profile's)."""
        before = autograd_state.capture()
        patch = pytest.MonkeyPatch()
        # one-line failure messages: formatting full tracebacks would dominate the time of a mutant run
        patch.setattr(item.config.option, "tbstyle", "line")
        test = getattr(item, "obj", None)
        if examples is not None and hasattr(test, "_hypothesis_internal_use_settings"):
            # hypothesis fixes a test's settings when it decorates it: replace them for this one run
            patch.setattr(test, "_hypothesis_internal_use_settings", settings(test._hypothesis_internal_use_settings, max_examples=examples))
        try:
            self.mutants[name].apply(patch)
            reports = runtestprotocol(item, nextitem=item.parent, log=False)
        finally:
            patch.undo()
            autograd_state.restore(before)
        self.run.tests_run[name] += 1
        outcome, message = _outcome(reports)
        if outcome == "failed":
            self.run.failures[name].append({
                "test": item.nodeid,
                "cites": cited,
                "violated": sorted(set(_VIOLATED.findall(message))),
                "message": _first_violation(message),
            })  # fmt: skip

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.remove_spies()
        self.run.seconds = time.perf_counter() - self._start
        path = Path(self.config.getoption("kill_matrix"))
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None:
            Path(f"{path}.{workerinput['workerid']}").write_text(json.dumps(self.run.to_json()))
            return
        parts = [self.run.to_json()] + [json.loads(p.read_text()) for p in sorted(path.parent.glob(path.name + ".gw*"))]
        matrix = build_matrix(parts, self.mutants, _clause_ids())
        path.write_text(json.dumps(matrix, indent=1, sort_keys=True))
        for part in path.parent.glob(path.name + ".gw*"):
            part.unlink()
        self.matrix = matrix

    def pytest_terminal_summary(self, terminalreporter) -> None:
        matrix = getattr(self, "matrix", None)
        if matrix is not None:
            terminalreporter.section("kill matrix")
            terminalreporter.write_line(format_totals(matrix))
            terminalreporter.write_line(f"kill matrix: {self.config.getoption('kill_matrix')}")


def _first_violation(message: str) -> str:
    for line in message.splitlines():
        if _VIOLATED.search(line):
            return line.strip()[:300]
    return message.strip().splitlines()[-1][:300] if message.strip() else ""


def _clause_ids() -> list[str]:
    from conformance.spec.registry import load_specs

    return sorted(load_specs())


# ----------------------------------------------------------------------------- the matrix


def _mutant_totals(rows: dict[str, dict]) -> dict:
    """The totals over the matrix's mutant rows: killed, precise, survivors, collateral."""
    return {
        "killed": sum(r["killed"] for r in rows.values()),
        "precise": sum(r["precise"] for r in rows.values()),
        "surviving": sorted(name for name, r in rows.items() if not r["killed"]),
        "imprecise": sorted(name for name, r in rows.items() if r["killed"] and not r["precise"]),
        "with_collateral": sum(bool(r["collateral"]) for r in rows.values()),
        "collateral_pairs": sum(len(r["collateral"]) for r in rows.values()),
    }


def build_matrix(parts: list[dict], mutants: dict[str, Mutant], clause_ids: list[str]) -> dict:
    """Merge the workers' parts: per mutant killed / precise / collateral, per clause its killers, totals."""
    tests_run: dict[str, int] = {name: 0 for name in mutants}
    failures: dict[str, list[dict]] = {name: [] for name in mutants}
    baseline: dict[str, dict] = {}
    seconds = 0.0
    collateral_examples = min((part.get("collateral_examples", 3) for part in parts), default=3)
    for part in parts:
        for name, n in part["tests_run"].items():
            tests_run[name] = tests_run.get(name, 0) + n
        for name, rows in part["failures"].items():
            failures.setdefault(name, []).extend(rows)
        baseline.update(part["baseline"])
        seconds = max(seconds, part.get("seconds", 0.0))
    rows = {}
    killers: dict[str, list[str]] = {cid: [] for cid in clause_ids}
    # a clause can be proven here only if one of its tests ran and passed on this torch and device
    checkable = {cid for entry in baseline.values() if entry["outcome"] == "passed" for cid in entry["cites"]}
    for name, mutant in sorted(mutants.items()):
        failed = sorted({cid for row in failures[name] for cid in row["cites"]})
        named = sorted({cid for row in failures[name] for cid in row["violated"] if cid in row["cites"]})
        unnamed = [cid for cid in mutant.breaks if cid not in named]
        for cid in mutant.breaks:
            if cid in named and cid in killers:
                killers[cid].append(name)
        rows[name] = {
            "area": mutant.area,
            "description": mutant.description,
            "regression": mutant.regression,
            "breaks": list(mutant.breaks),
            "tests_run": tests_run[name],
            "tests_failed": len(failures[name]),
            "killed": bool(failures[name]),
            "precise": bool(failures[name]) and not unnamed,
            "breaks_not_failed": unnamed,
            "failed_clauses": failed,
            "collateral": [cid for cid in failed if cid not in mutant.breaks],
            "failures": sorted(failures[name], key=lambda row: row["test"]),
        }
    totals = {
        "mutants": len(rows),
        **_mutant_totals(rows),
        "clauses": len(clause_ids),
        "clauses_killed": sum(bool(k) for k in killers.values()),
        "clauses_without_killing_mutant": sorted(cid for cid, k in killers.items() if not k and cid in checkable),
        "clauses_not_checkable_here": sorted(cid for cid in clause_ids if cid not in checkable),
        "regression_mutants": sum(bool(r["regression"]) for r in rows.values()),
        "mutant_test_runs": sum(tests_run.values()),
        "baseline_tests": len(baseline),
        "baseline_failed": sorted(nodeid for nodeid, entry in baseline.items() if entry["outcome"] == "failed"),
        "seconds": round(seconds, 1),
        "collateral_measured": collateral_examples > 0,
    }
    clauses = {cid: {"killed_by": k, "checkable_here": cid in checkable} for cid, k in killers.items()}
    return {"mutants": rows, "clauses": clauses, "baseline": baseline, "totals": totals}


def merge_matrices(first: dict, second: dict) -> dict:
    """One matrix from two runs over different devices (e.g. the CPU, then the emulated device for
    the clauses whose tests do not run on the CPU): a mutant is killed if either run killed it, a
    clause it names counts as failed if either run failed it with a message naming it."""
    rows = {}
    for name, a in first["mutants"].items():
        b = second["mutants"].get(name)
        if b is None:
            rows[name] = a
            continue
        failures = a["failures"] + b["failures"]
        failed = sorted(set(a["failed_clauses"]) | set(b["failed_clauses"]))
        unnamed = [cid for cid in a["breaks"] if cid in a["breaks_not_failed"] and cid in b["breaks_not_failed"]]
        killed = a["killed"] or b["killed"]
        rows[name] = {
            **a,
            "tests_run": a["tests_run"] + b["tests_run"],
            "tests_failed": a["tests_failed"] + b["tests_failed"],
            "killed": killed,
            "precise": killed and not unnamed,
            "breaks_not_failed": unnamed,
            "failed_clauses": failed,
            "collateral": [cid for cid in failed if cid not in a["breaks"]],
            "failures": sorted(failures, key=lambda row: row["test"]),
        }
    clauses = {
        cid: {
            "killed_by": sorted(set(c["killed_by"]) | set(second["clauses"].get(cid, {}).get("killed_by", []))),
            "checkable_here": c["checkable_here"] or second["clauses"].get(cid, {}).get("checkable_here", False),
        }
        for cid, c in first["clauses"].items()
    }
    baseline = {**first["baseline"], **second["baseline"]}
    t1, t2 = first["totals"], second["totals"]
    totals = {
        **t1,
        **_mutant_totals(rows),
        "clauses_killed": sum(bool(c["killed_by"]) for c in clauses.values()),
        "clauses_without_killing_mutant": sorted(cid for cid, c in clauses.items() if not c["killed_by"] and c["checkable_here"]),
        "clauses_not_checkable_here": sorted(cid for cid, c in clauses.items() if not c["checkable_here"]),
        "mutant_test_runs": t1["mutant_test_runs"] + t2["mutant_test_runs"],
        "baseline_tests": len(baseline),
        "baseline_failed": sorted(set(t1["baseline_failed"]) | set(t2["baseline_failed"])),
        "seconds": round(t1["seconds"] + t2["seconds"], 1),
        "collateral_measured": t1.get("collateral_measured", True) and t2.get("collateral_measured", True),
    }
    return {"mutants": rows, "clauses": clauses, "baseline": baseline, "totals": totals}


def format_totals(matrix: dict) -> str:
    t = matrix["totals"]
    lines = [
        f"mutants: {t['mutants']} ({t['regression_mutants']} modelled on shipped torch regressions); "
        f"killed: {t['killed']}; precise: {t['precise']}; surviving: {len(t['surviving'])}; imprecise: {len(t['imprecise'])}",
        f"clauses: {t['clauses']}; with a killing mutant: {t['clauses_killed']}; without: {len(t['clauses_without_killing_mutant'])}; "
        f"no test ran here (version range, device): {len(t['clauses_not_checkable_here'])} {t['clauses_not_checkable_here']}",
        (
            f"collateral: {t['with_collateral']} mutants also failed other clauses ({t['collateral_pairs']} mutant x clause pairs)"
            if t.get("collateral_measured", True)
            else "collateral: not measured (--kill-collateral-examples 0: each mutant ran only against the tests of the clauses it names)"
        ),
        f"mutant x test runs: {t['mutant_test_runs']} over {t['baseline_tests']} tests; {t['seconds']} s",
    ]
    if t["surviving"]:
        lines.append(f"surviving mutants: {', '.join(t['surviving'])}")
    if t["imprecise"]:
        lines.append(f"imprecise mutants: {', '.join(t['imprecise'])}")
    if t["clauses_without_killing_mutant"]:
        lines.append(f"clauses without a killing mutant: {', '.join(t['clauses_without_killing_mutant'])}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plugin entry points


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kill matrix")
    group.addoption("--kill-matrix", default=None, metavar="PATH", help="run every mutant against every test it could affect; write the kill matrix (JSON) here")
    group.addoption(
        "--kill-collateral-examples", default=3, type=int, metavar="N",
        help="examples per property test when a mutant runs against tests of clauses it does not name (default 3; "
        "tests of the clauses it names get the mutation profile's 10; 0: no such runs, the collateral is not measured)",
    )  # fmt: skip
    group.addoption("--kill-mutants", default=None, metavar="NAMES", help="comma-separated mutant names (default: all of tests/mutants/)")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("kill_matrix"):
        return
    names = config.getoption("kill_mutants")
    selected = {n: MUTANTS[n] for n in names.split(",")} if names else dict(MUTANTS)
    load_mutation_profile()
    plugin = KillMatrixPlugin(config, selected)
    if not _is_xdist_controller(config):
        _script_forward_mode_decompositions()
        plugin.install_spies()
    config.pluginmanager.register(plugin, "kill-matrix")


def _script_forward_mode_decompositions() -> None:
    """Have torch script its forward-mode decompositions now, before the spies replace torch functions.

    Forward-mode AD (``torch.autograd.forward_ad``, ``torch.func.jvp``, ``jacfwd``, ``hessian``, forward-mode
    ``jacobian``) imports ``torch._decomp.decompositions_for_jvp`` on first use, which ``torch.jit.script``s
    decompositions calling ``torch.where`` and other torch functions; TorchScript cannot compile a spy, so a first
    forward-mode call under the spies fails with "TypeError: ... expected, got builtin_function_or_method".  Nothing
    of torch is changed.  (Absent from older torch lines, whose forward AD scripts nothing.)
    """
    with contextlib.suppress(ImportError):
        import torch._decomp.decompositions_for_jvp  # noqa: F401


def _is_xdist_controller(config: pytest.Config) -> bool:
    return getattr(config, "workerinput", None) is None and bool(getattr(config.option, "numprocesses", None))

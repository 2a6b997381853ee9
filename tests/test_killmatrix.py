"""The kill-matrix machinery itself: footprints, spies, and the matrix built from workers' parts."""

from __future__ import annotations

import types

import pytest
import torch

from tests.killmatrix import ALWAYS, KillMatrixPlugin, _spy, _Tracer, build_matrix, footprint, format_totals, merge_matrices
from tests.mutants import MUTANTS, Mutant


class Target:
    """Stand-ins for what mutants patch: a class, a method, a staticmethod, a property, a module."""

    class Mode:
        def __init__(self, flag=True):
            self.flag = flag

    def method(self, x):
        return x + 1

    @staticmethod
    def static(x):
        return x * 2

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, v):
        self._value = v

    module = types.ModuleType("fake")


Target.module.answer = 42


def test_footprint_records_what_a_mutant_sets_and_applies_nothing():
    before = torch.Tensor.backward
    fp = footprint(MUTANTS["backward_always_retains_graph"])
    assert fp == {(torch.Tensor, "backward")}
    assert torch.Tensor.backward is before


def test_footprint_of_setitem_is_always():
    mutant = Mutant("m", ("X-1",), "d", lambda mp: mp.setitem({}, "k", 1))
    assert footprint(mutant) == {ALWAYS}


@pytest.mark.parametrize("name", ["Mode", "method", "static", "value", "module"])
def test_spies_behave_like_the_original_and_note_each_use(monkeypatch, name):
    key = (Target, name)
    monkeypatch.setattr(Target, name, _spy(key))
    _Tracer.touched = touched = set()
    try:
        t = Target()
        results = {
            "Mode": lambda: (isinstance(Target.Mode(False), Target.Mode), Target.Mode(False).flag),
            "method": lambda: t.method(1),
            "static": lambda: (Target.static(3), t.static(3)),
            "value": lambda: (setattr(t, "value", 5), t.value)[1],
            "module": lambda: Target.module.answer,
        }[name]()
    finally:
        _Tracer.touched = None
    assert results == {"Mode": (True, False), "method": 2, "static": (6, 6), "value": 5, "module": 42}[name]
    assert touched == {key}


def test_a_spy_notes_nothing_between_tests(monkeypatch):
    monkeypatch.setattr(Target, "method", _spy((Target, "method")))
    assert _Tracer.touched is None
    assert Target().method(1) == 2


def _mutant(name, breaks):
    return Mutant(name, breaks, f"{name} breaks {breaks}", lambda mp: None)


def test_build_matrix_killed_precise_collateral_and_unchecked_clauses():
    mutants = {m.name: m for m in (_mutant("precise", ("A-1",)), _mutant("vague", ("A-2",)), _mutant("survivor", ("B-1",)))}
    part = {
        "tests_run": {"precise": 2, "vague": 1, "survivor": 3},
        "failures": {
            "precise": [
                {"test": "t1", "cites": ["A-1"], "violated": ["A-1"], "message": "A-1 violated: x"},
                {"test": "t2", "cites": ["B-1"], "violated": ["B-1"], "message": "B-1 violated: y"},
            ],
            "vague": [{"test": "t3", "cites": ["A-2"], "violated": [], "message": "RuntimeError: boom"}],
            "survivor": [],
        },
        "baseline": {
            "t1": {"outcome": "passed", "cites": ["A-1"]},
            "t2": {"outcome": "passed", "cites": ["B-1"]},
            "t3": {"outcome": "passed", "cites": ["A-2"]},
            "t4": {"outcome": "skipped", "cites": ["C-1"]},
        },
        "seconds": 1.5,
    }
    matrix = build_matrix([part], mutants, ["A-1", "A-2", "B-1", "C-1"])
    rows, totals = matrix["mutants"], matrix["totals"]
    assert (rows["precise"]["killed"], rows["precise"]["precise"], rows["precise"]["collateral"]) == (True, True, ["B-1"])
    assert (rows["vague"]["killed"], rows["vague"]["precise"], rows["vague"]["breaks_not_failed"]) == (True, False, ["A-2"])
    assert rows["survivor"]["killed"] is False
    assert totals["surviving"] == ["survivor"] and totals["imprecise"] == ["vague"]
    assert matrix["clauses"]["A-1"]["killed_by"] == ["precise"]
    assert totals["clauses_without_killing_mutant"] == ["A-2", "B-1"]
    assert totals["clauses_not_checkable_here"] == ["C-1"]
    assert "surviving mutants: survivor" in format_totals(matrix)


def test_build_matrix_merges_worker_parts():
    mutants = {"m": _mutant("m", ("A-1",))}
    parts = [
        {"tests_run": {"m": 1}, "failures": {"m": []}, "baseline": {"t1": {"outcome": "passed", "cites": ["A-1"]}}, "seconds": 3.0},
        {"tests_run": {"m": 1}, "failures": {"m": [{"test": "t2", "cites": ["A-1"], "violated": ["A-1"], "message": ""}]},
         "baseline": {"t2": {"outcome": "passed", "cites": ["A-1"]}}, "seconds": 4.0},
    ]  # fmt: skip
    matrix = build_matrix(parts, mutants, ["A-1"])
    assert matrix["mutants"]["m"]["tests_run"] == 2 and matrix["mutants"]["m"]["precise"]
    assert matrix["totals"]["seconds"] == 4.0 and matrix["totals"]["baseline_tests"] == 2


def test_merge_matrices_of_two_devices_proves_a_clause_only_the_second_device_checks():
    """The CPU matrix cannot check D-1 (its test is declared for non-CPU devices); the emulated device's can."""
    mutants = {m.name: m for m in (_mutant("cpu_bug", ("A-1",)), _mutant("device_bug", ("D-1",)))}
    failing = {"test": "t", "cites": ["D-1"], "violated": ["D-1"], "message": "D-1 violated: z"}
    cpu = build_matrix(
        [{"tests_run": {"cpu_bug": 1, "device_bug": 0},
          "failures": {"cpu_bug": [{"test": "t1", "cites": ["A-1"], "violated": ["A-1"], "message": ""}], "device_bug": []},
          "baseline": {"t1": {"outcome": "passed", "cites": ["A-1"]}, "t2": {"outcome": "skipped", "cites": ["D-1"]}}, "seconds": 2.0}],
        mutants, ["A-1", "D-1"],
    )  # fmt: skip
    device = build_matrix(
        [{"tests_run": {"cpu_bug": 0, "device_bug": 1}, "failures": {"cpu_bug": [], "device_bug": [failing]},
          "baseline": {"t2[emu]": {"outcome": "passed", "cites": ["D-1"]}}, "seconds": 1.0}],
        mutants, ["A-1", "D-1"],
    )  # fmt: skip
    assert cpu["totals"]["surviving"] == ["device_bug"] and cpu["totals"]["clauses_not_checkable_here"] == ["D-1"]
    merged = merge_matrices(cpu, device)
    assert merged["totals"]["surviving"] == [] and merged["totals"]["precise"] == 2
    assert merged["clauses"]["D-1"] == {"killed_by": ["device_bug"], "checkable_here": True}
    assert merged["totals"]["clauses_not_checkable_here"] == [] and merged["totals"]["seconds"] == 3.0
    assert merged["mutants"]["cpu_bug"]["precise"], "a mutant the first device proved stays proven"


def _plugin(mutants, collateral_examples):
    """A plugin over ``mutants`` that patch nothing (empty footprints: every one runs wherever asked), spies not installed."""
    plugin = KillMatrixPlugin.__new__(KillMatrixPlugin)
    plugin.mutants, plugin.collateral_examples = mutants, collateral_examples
    plugin.footprints = {name: frozenset() for name in mutants}
    plugin._always = set(mutants)
    return plugin


@pytest.mark.parametrize("collateral_examples", [3, 0])
def test_a_mutant_runs_against_its_own_tests_always_and_others_only_when_collateral_is_measured(collateral_examples):
    mutants = {m.name: m for m in (_mutant("own", ("A-1",)), _mutant("other", ("B-1",)))}
    runs = _plugin(mutants, collateral_examples).runs_for(set(), ["A-1"])
    expected = [("own", None)] + ([("other", collateral_examples)] if collateral_examples else [])
    assert runs == expected


def test_a_matrix_without_collateral_runs_says_so_and_proves_the_same():
    mutants = {"m": _mutant("m", ("A-1",))}
    part = {
        "tests_run": {"m": 1}, "failures": {"m": [{"test": "t1", "cites": ["A-1"], "violated": ["A-1"], "message": ""}]},
        "baseline": {"t1": {"outcome": "passed", "cites": ["A-1"]}}, "seconds": 1.0,
    }  # fmt: skip
    full, own_only = (build_matrix([{**part, "collateral_examples": n}], mutants, ["A-1"]) for n in (3, 0))
    assert full["totals"]["collateral_measured"] and not own_only["totals"]["collateral_measured"]
    assert own_only["mutants"] == full["mutants"] and own_only["clauses"] == full["clauses"]
    assert "collateral: not measured" in format_totals(own_only)
    assert not merge_matrices(full, own_only)["totals"]["collateral_measured"]

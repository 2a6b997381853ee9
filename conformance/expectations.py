"""Known failures: the expectations file.

An expectations file lists the tests that are *expected* to fail on some torch
versions and devices, each with a reason (usually a torch defect and its issue).
A matching test is marked ``xfail`` (not strict): its failure is reported as the
clause outcome ``known failure``, which does not fail the run. An entry in force
that matches no failing test (the defect was fixed, or the entry has a typo) is
*stale*: the run warns about it and the report lists it.

The file is TOML, one ``[[expected_failure]]`` table per entry::

    [[expected_failure]]
    clause = "ACCUM-2"                     # required: a clause ID of the spec
    test = "test_second_backward_on_zero_dim"  # optional: substring of the node id
    torch = ">=2.0"                         # optional: PEP 440 specifier (default: every version)
    devices = ["cpu"]                       # optional: device strings (default: every device)
    reason = "why it fails, and the upstream issue"   # required

The suite ships ``conformance/expectations.toml`` with the torch defects it
found; ``--expectations PATH`` reads another file instead, ``--expectations=``
reads none.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

__all__ = ["DEFAULT_EXPECTATIONS", "Expectation", "ExpectationsError", "load_expectations"]

DEFAULT_EXPECTATIONS = Path(__file__).resolve().parent / "expectations.toml"

_KEYS = {"clause", "test", "torch", "devices", "reason"}


class ExpectationsError(ValueError):
    """The expectations file cannot be read, or an entry is malformed."""


@dataclass(frozen=True)
class Expectation:
    clause: str
    reason: str
    source: str  # "path:entry N", for messages
    test: str | None = None
    torch: str | None = None
    devices: tuple[str, ...] | None = None

    def in_force(self, torch_version: str) -> bool:
        """Whether the entry applies to this torch (local build labels such as ``+cpu`` are ignored)."""
        if self.torch is None:
            return True
        return SpecifierSet(self.torch).contains(Version(Version(torch_version).base_version), prereleases=True)

    def matches(self, nodeid: str, clause_ids: Collection[str], device: str | None) -> bool:
        if self.clause not in clause_ids:
            return False
        if self.test is not None and self.test not in nodeid:
            return False
        return self.devices is None or device is None or device in self.devices

    def describe(self) -> str:
        where = f"torch {self.torch}" if self.torch else "every torch"
        on = ", ".join(self.devices) if self.devices else "every device"
        test = f" {self.test!r}" if self.test else ""
        return f"{self.clause}{test} on {where}, {on} ({self.source})"

    def to_json(self) -> dict:
        return {
            "clause": self.clause,
            "test": self.test,
            "torch": self.torch,
            "devices": list(self.devices) if self.devices is not None else None,
            "reason": self.reason,
        }


def load_expectations(path: Path, known_clauses: Iterable[str]) -> list[Expectation]:
    """Parse and validate ``path``; every problem is an :class:`ExpectationsError` naming the entry."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ExpectationsError(f"cannot read expectations file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationsError(f"expectations file {path} is not valid TOML: {exc}") from None
    unknown_tables = set(document) - {"expected_failure"}
    if unknown_tables:
        raise ExpectationsError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown_tables))}; expected only [[expected_failure]] tables"
        )
    known = set(known_clauses)
    entries = document.get("expected_failure", [])
    if not isinstance(entries, list):
        raise ExpectationsError(f"{path}: expected_failure must be an array of tables ([[expected_failure]])")
    return [_parse_entry(entry, f"{path.name}:entry {index}", known) for index, entry in enumerate(entries, start=1)]


def _parse_entry(entry: object, source: str, known: set[str]) -> Expectation:
    if not isinstance(entry, dict):
        raise ExpectationsError(f"{source}: an entry must be a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ExpectationsError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_KEYS))}")
    clause = entry.get("clause")
    if not isinstance(clause, str) or not clause:
        raise ExpectationsError(f"{source}: 'clause' (a clause ID) is required")
    if clause not in known:
        raise ExpectationsError(f"{source}: clause {clause!r} is not in the spec")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ExpectationsError(f"{source}: 'reason' is required: say why {clause} is expected to fail")
    test = entry.get("test")
    if test is not None and (not isinstance(test, str) or not test):
        raise ExpectationsError(f"{source}: 'test' must be a non-empty substring of a test node id")
    torch_range = entry.get("torch")
    if torch_range is not None:
        try:
            SpecifierSet(str(torch_range))
        except InvalidSpecifier:
            raise ExpectationsError(f"{source}: 'torch' must be a version specifier such as '>=2.0,<2.5', got {torch_range!r}") from None
    devices = entry.get("devices")
    if devices is not None:
        if not isinstance(devices, list) or not devices or not all(isinstance(d, str) and d for d in devices):
            raise ExpectationsError(f"{source}: 'devices' must be a non-empty list of device strings such as [\"cpu\"]")
        devices = tuple(devices)
    return Expectation(clause, reason.strip(), source, test, None if torch_range is None else str(torch_range), devices)

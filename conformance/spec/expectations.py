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
    torch = ">=1.13.1,<=2.15.0"            # required: PEP 440 specifier, the torch versions it was seen on
    devices = ["cpu"]                       # required: the device strings it was seen on; a kind ("cuda") covers cuda:0, cuda:1, ...
    modes = ["compile:aot_eager"]           # optional: the execution modes it was seen in (default: every mode)
    issue = "pytorch/pytorch#12345"         # the upstream issue (owner/repo#N or a URL) ...
    reproduction = "conformance/tests/test_accumulation.py::test_second_backward_on_zero_dim_leaves_with_aliased_grads"
                                            # ... or a reproduction (a test id or a script); at least one
    reason = "what fails and why"           # required

An entry is a claim about a torch defect: it must say where the defect is
tracked (``issue``) or how to see it (``reproduction``), and on which torch
versions and devices it was seen, so that nobody keeps it forever by accident.
A missing or malformed field is an :class:`ExpectationsError` (a usage error of
the run) naming the entry and the field.

The suite ships ``conformance/spec/expectations.toml`` with the torch defects it
found; ``--expectations PATH`` reads another file instead, ``--expectations=``
reads none.
"""

from __future__ import annotations

import re
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

__all__ = ["DEFAULT_EXPECTATIONS", "ISSUE", "Expectation", "ExpectationsError", "load_expectations"]

DEFAULT_EXPECTATIONS = Path(__file__).resolve().parent / "expectations.toml"

_KEYS = {"clause", "test", "torch", "devices", "modes", "issue", "reproduction", "reason"}
#: the modes an entry may name (conformance/testlib/modes.py; repeated here: this module imports no torch)
MODES = ("eager", "compile:eager", "compile:aot_eager", "compile:inductor")
#: an upstream issue: ``owner/repo#N`` (``pytorch/pytorch#12345``) or a URL
ISSUE = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/[\w.-]+#\d+|https?://\S+)$")


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
    issue: str | None = None  # upstream issue: owner/repo#N or a URL
    reproduction: str | None = None  # a test id or a script that shows the defect
    modes: tuple[str, ...] | None = None  # the execution modes it was seen in; None: every mode

    def in_force(self, torch_version: str) -> bool:
        """Whether the entry applies to this torch (local build labels such as ``+cpu`` are ignored)."""
        if self.torch is None:
            return True
        return SpecifierSet(self.torch).contains(Version(Version(torch_version).base_version), prereleases=True)

    def matches(self, nodeid: str, clause_ids: Collection[str], device: str | None, mode: str = "eager") -> bool:
        if self.clause not in clause_ids:
            return False
        if self.modes is not None and mode not in self.modes:
            return False
        if self.test is not None and self.test not in nodeid:
            return False
        # a device kind ("cuda") covers every device of that kind ("cuda:0", "cuda:1")
        return self.devices is None or device is None or device in self.devices or device.split(":")[0] in self.devices

    def describe(self) -> str:
        where = f"torch {self.torch}" if self.torch else "every torch"
        on = ", ".join(self.devices) if self.devices else "every device"
        if self.modes:
            on += " in " + ", ".join(self.modes)
        test = f" {self.test!r}" if self.test else ""
        return f"{self.clause}{test} on {where}, {on} ({self.source})"

    def to_json(self) -> dict:
        return {
            "clause": self.clause,
            "test": self.test,
            "torch": self.torch,
            "devices": list(self.devices) if self.devices is not None else None,
            "modes": list(self.modes) if self.modes is not None else None,
            "issue": self.issue,
            "reproduction": self.reproduction,
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
    issue, reproduction = entry.get("issue"), entry.get("reproduction")
    if issue is None and reproduction is None:
        raise ExpectationsError(
            f"{source}: {clause}: name the upstream issue ('issue', e.g. \"pytorch/pytorch#12345\" or a URL) "
            f"or a reproduction ('reproduction', e.g. the test id that shows it): an expected failure must say "
            f"where the defect is tracked or how to see it"
        )
    if issue is not None and (not isinstance(issue, str) or not ISSUE.match(issue)):
        raise ExpectationsError(
            f"{source}: 'issue' must be owner/repo#N (\"pytorch/pytorch#12345\") or a URL, got {issue!r}"
        )
    if reproduction is not None and (not isinstance(reproduction, str) or not reproduction.strip()):
        raise ExpectationsError(f"{source}: 'reproduction' must be a non-empty string (a test id or a script)")
    if "torch" not in entry:
        raise ExpectationsError(
            f"{source}: {clause}: 'torch' is required: the torch versions the failure was seen on, "
            f"e.g. '>=2.14,<2.16'"
        )
    torch_range = entry["torch"]
    try:
        if not isinstance(torch_range, str) or not torch_range.strip():
            raise InvalidSpecifier(torch_range)
        SpecifierSet(torch_range)
    except InvalidSpecifier:
        raise ExpectationsError(f"{source}: 'torch' must be a version specifier such as '>=2.0,<2.5', got {torch_range!r}") from None
    if "devices" not in entry:
        raise ExpectationsError(
            f"{source}: {clause}: 'devices' is required: the devices the failure was seen on, e.g. [\"cpu\"]"
        )
    devices = entry["devices"]
    if not isinstance(devices, list) or not devices or not all(isinstance(d, str) and d for d in devices):
        raise ExpectationsError(f"{source}: 'devices' must be a non-empty list of device strings such as [\"cpu\"]")
    modes = entry.get("modes")
    if modes is not None and (
        not isinstance(modes, list) or not modes or not all(isinstance(m, str) and m in MODES for m in modes)
    ):
        raise ExpectationsError(f"{source}: 'modes' must be a non-empty list of modes from {', '.join(MODES)}, got {modes!r}")
    return Expectation(
        clause,
        reason.strip(),
        source,
        test,
        torch_range,
        tuple(devices),
        issue,
        None if reproduction is None else reproduction.strip(),
        None if modes is None else tuple(modes),
    )

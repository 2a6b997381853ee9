"""How many of a property test's examples could have failed: a pytest plugin for the suite's own tests.

``pytest -p tests.decisiveness --decisiveness-report PATH`` reads hypothesis'
run statistics of every property test (the data behind
``--hypothesis-show-statistics``; its observability callbacks made a run five
times slower) and writes, per property test, how many examples ran, how many were *discarded* (rejected by
``assume``/``filter``) and how many were *vacuous* (the test
marked them with :func:`conformance.testlib.strategies.vacuous`: nothing it asserts
depended on torch for that draw).  The rest are *decisive*: a torch that broke
the clause could have failed them.  ``tests/test_decisiveness.py`` runs the
suite under the ``ci`` profile with this plugin and fails any test below the
threshold.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conformance.testlib.strategies import VACUOUS_EVENT_PREFIX

THRESHOLD = 0.90

_KEY = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--decisiveness-report", default=None, help="write the share of decisive examples per property test here (JSON)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("decisiveness_report"):
        config.stash[_KEY] = {}


_COUNTED_PHASES = ("explicit-phase", "reuse-phase", "generate-phase")


def tally_statistics(stats: dict) -> dict:
    """One test's figures from hypothesis' run statistics (the dict behind ``--hypothesis-show-statistics``)."""
    counts: Counter = Counter()
    reasons: Counter = Counter()
    for phase in _COUNTED_PHASES:
        for case in stats.get(phase, {}).get("test-cases", []):
            status = case["status"]
            if status == "overrun":  # hypothesis aborted the draw before the test body ran: the engine's, not ours
                counts["overrun"] += 1
                continue
            counts["examples"] += 1
            vacuous = [e for e in case.get("events", []) if e.startswith(VACUOUS_EVENT_PREFIX)]
            if status == "invalid":
                counts["discarded"] += 1
                reasons.update([e for e in case.get("events", []) if not e.startswith(VACUOUS_EVENT_PREFIX)] or ["discarded by assume/filter"])
            elif vacuous:
                counts["vacuous"] += 1
                reasons.update(vacuous)
    return {
        "examples": counts["examples"],
        "discarded": counts["discarded"],
        "vacuous": counts["vacuous"],
        "decisive": counts["examples"] - counts["discarded"] - counts["vacuous"],
        "overrun": counts["overrun"],
        "reasons": dict(reasons),
    }


@pytest.hookimpl(wrapper=True, trylast=True)  # inside hypothesis' own wrapper, which sets the collector too
def pytest_runtest_call(item: pytest.Item):
    tally = item.config.stash.get(_KEY, None)
    if tally is None:
        return (yield)
    from hypothesis.statistics import collector

    outer = collector.value

    def note(stats: dict) -> None:
        entry = tally_statistics(stats)
        if entry["examples"]:
            tally[item.nodeid] = entry
        if outer is not None:
            outer(stats)

    with collector.with_value(note):
        return (yield)


def pytest_sessionfinish(session: pytest.Session) -> None:
    tally = session.config.stash.get(_KEY, None)
    path = session.config.getoption("decisiveness_report")
    if tally is None or not path:
        return
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is not None:  # an xdist worker: its own part, merged by read_report
        path = f"{path}.{workerinput['workerid']}"
    Path(path).write_text(json.dumps(tally, indent=1, sort_keys=True))


def read_report(path: Path) -> dict[str, dict]:
    """The tally of one run, merging the parts xdist workers wrote beside ``path``."""
    tally: dict[str, dict] = {}
    for part in [path, *sorted(path.parent.glob(path.name + ".gw*"))]:
        if part.exists():
            tally.update(json.loads(part.read_text()))
    return tally


def share(entry: dict) -> float:
    return entry["decisive"] / entry["examples"]


def format_table(tally: dict[str, dict], *, most: int | None = None) -> str:
    """Lowest share first: test, examples, discarded, vacuous, decisive share, why."""
    rows = sorted(tally.items(), key=lambda kv: (share(kv[1]), kv[0]))[:most]
    lines = [f"{'decisive':>8} {'examples':>8} {'discarded':>9} {'vacuous':>7} {'overrun':>7}  test"]
    for nodeid, entry in rows:
        why = "; ".join(f"{reason} x{n}" for reason, n in sorted(entry["reasons"].items(), key=lambda kv: -kv[1]))
        lines.append(f"{share(entry):>8.0%} {entry['examples']:>8} {entry['discarded']:>9} {entry['vacuous']:>7} {entry.get('overrun', 0):>7}  {nodeid}" + (f"  ({why})" if why else ""))
    return "\n".join(lines)

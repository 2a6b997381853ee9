"""``--shard I/N``: run the I-th of N parts of the suite, split by recorded test durations (pytest-split).

CI spreads a run over N jobs; job I runs ``pytest --shard I/N`` and writes its
shard report, and ``python -m conformance merge -o merged.json shard-*.json``
combines them into the report a serial run writes (``conformance/reporting/merge.py``).

The splitting is pytest-split's (``--splits N --group I``): every shard
collects the whole suite, and pytest-split keeps the I-th of N consecutive
chunks of about equal recorded duration, deselecting the rest.  The split is
deterministic: it depends only on the collected tests and the durations file.
This module validates ``--shard`` (a usage error on bad input) and sets
pytest-split's options before pytest-split reads them (a ``tryfirst``
``pytest_configure``); the durations are those of
``conformance/test_durations.json``, recorded from one default CI run
(``CI=true pytest --store-durations --durations-path conformance/test_durations.json``),
unless ``--durations-path`` names another file.  A test the file does not know
(a compiled mode, another device, a new test) counts as the average duration.

The conformance plugin's collection (``collection.py``, ``tryfirst``) creates
the report's record of every collected conformance test before pytest-split
deselects: a shard report lists every test, the ones other shards run as
``not run``, which is what the merge relies on.

The hooks carry ``specname`` so that the plugin package can import them beside
its own (``from .shards import ...``) or a session can load this module alone
(``-p conformance.plugin.shards``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

__all__ = ["DURATIONS", "Shard", "parse_shard"]

#: test durations of a default CI run (node ids relative to the repository root), pytest-split's format
DURATIONS = Path(__file__).resolve().parent.parent / "test_durations.json"
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
#: the path of the suite's tests in a node id, from which durations are matched (the rootdir may differ)
_TESTS_PREFIX = "conformance/tests/"


class Shard(tuple):
    """``(index, count)``: the 1-based index of the shard and the number of shards."""

    __slots__ = ()

    def __new__(cls, index: int, count: int) -> Shard:
        return super().__new__(cls, (index, count))

    @property
    def index(self) -> int:
        return self[0]

    @property
    def count(self) -> int:
        return self[1]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` -> ``Shard(2, 4)``; a :class:`ValueError` explaining the expected form otherwise."""
    match = _SHARD.match(text or "")
    if not match:
        raise ValueError(f"--shard expects I/N, the I-th of N shards (e.g. --shard 2/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"--shard {text.strip()}: expected 1 <= I <= N (shards are numbered from 1)")
    return Shard(index, count)


@pytest.hookimpl(specname="pytest_addoption")
def pytest_addoption_shards(parser: pytest.Parser) -> None:
    parser.getgroup("autograd-conformance").addoption(
        "--shard",
        metavar="I/N",
        help="run the I-th of N shards of the suite (1 <= I <= N), split by recorded test durations "
        "(pytest-split, conformance/test_durations.json); merge the shard reports with "
        "'python -m conformance merge -o merged.json shard-*.json'",
    )


@pytest.hookimpl(tryfirst=True, specname="pytest_configure")  # before pytest-split's pytest_configure reads them
def pytest_configure_shards(config: pytest.Config) -> None:
    value = config.getoption("shard", None)
    if value is None:
        return
    try:
        shard = parse_shard(value)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not hasattr(config.option, "splits"):
        raise pytest.UsageError(
            "--shard needs the pytest-split plugin (pip install pytest-split), which is not installed or was "
            "disabled with -p no:pytest_split"
        )
    given = (config.option.splits, config.option.group)
    if given != (None, None) and given != (shard.count, shard.index):  # (an xdist worker gets them set already)
        raise pytest.UsageError("--shard sets pytest-split's --splits and --group: give one or the other, not both")
    config.option.splits, config.option.group = shard.count, shard.index
    if not _given(config, "--durations-path"):
        config.option.durations_path = str(DURATIONS)
    config.pluginmanager.register(_DurationsByTestPath(), "autograd-conformance-shard-durations")


def _given(config: pytest.Config, option: str) -> bool:
    return any(arg == option or arg.startswith(f"{option}=") for arg in config.invocation_params.args)


class _DurationsByTestPath:
    """Matches the durations file to the collected tests by their path from ``conformance/tests/`` on, so that a
    run whose rootdir is not the repository's (the installed suite, ``--pyargs conformance.tests``) finds them."""

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        split = config.pluginmanager.get_plugin("pytestsplitplugin")
        durations = getattr(split, "cached_durations", None)
        if not isinstance(durations, dict) or not durations:
            return
        by_path = {_test_path(nodeid): seconds for nodeid, seconds in durations.items()}
        for item in items:
            if item.nodeid not in durations:
                seconds = by_path.get(_test_path(item.nodeid))
                if seconds is not None:
                    durations[item.nodeid] = seconds


def _test_path(nodeid: str) -> str:
    at = nodeid.find(_TESTS_PREFIX)
    return nodeid[at:] if at >= 0 else nodeid

"""``--shard I/N`` (``conformance/plugin/shards.py``): a deterministic split by recorded durations (pytest-split).

The shards of a run partition its tests, the same way on every run; bad values
are usage errors; the shipped durations file covers the suite's tests.  The
conformance plugin registers ``--shard`` (``-p conformance.plugin``, dormant in
these plain sessions otherwise).  That
merged shard reports equal the serial report is ``tests/test_merge.py``'s.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from conformance.plugin import shards
from conformance.plugin.shards import DURATIONS, Shard, parse_shard

TESTS = """\
import pytest

@pytest.mark.parametrize("n", range(10))
def test_a(n):
    pass

def test_b():
    pass

@pytest.mark.parametrize("n", range(5))
def test_c(n):
    pass
"""


@pytest.mark.parametrize(("text", "shard"), [("1/1", Shard(1, 1)), ("2/4", Shard(2, 4)), (" 3 / 3 ", Shard(3, 3))])
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard and (shard.index, shard.count) == tuple(shard)
    assert str(shard) == f"{shard.index}/{shard.count}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/2", "expected 1 <= I <= N"),
        ("3/2", "expected 1 <= I <= N"),
        ("1/0", "expected 1 <= I <= N"),
        ("2", "--shard expects I/N"),
        ("a/b", "--shard expects I/N"),
        ("-1/2", "--shard expects I/N"),
    ],
)
def test_parse_shard_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(text)


@pytest.fixture
def plain(pytester: pytest.Pytester) -> pytest.Pytester:
    """A plain test module (no conformance tests) and a durations file that makes the chunks uneven."""
    pytester.makepyfile(test_plain=textwrap.dedent(TESTS))
    durations = {f"test_plain.py::test_a[{n}]": 0.1 for n in range(10)}
    durations["test_plain.py::test_b"] = 0.6
    (pytester.path / "durations.json").write_text(json.dumps(durations), encoding="utf-8")
    return pytester


def selected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest("-p", "conformance.plugin", "--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str()
    return [line for line in result.stdout.lines if "::" in line]


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_partition_the_tests_deterministically(plain, count):
    everything = selected(plain)
    assert len(everything) == 16
    parts = [selected(plain, f"--shard={i}/{count}", "--durations-path=durations.json") for i in range(1, count + 1)]
    assert sorted(sum(parts, [])) == sorted(everything)  # each test in exactly one shard
    assert all(parts), parts  # none empty: 16 tests, at most 4 shards
    again = [selected(plain, f"--shard={i}/{count}", "--durations-path=durations.json") for i in range(1, count + 1)]
    assert again == parts
    if count == 2:  # consecutive chunks of about equal duration, not of equal count: 2.1 s in all (the five
        # test_c unknown to the file count as the average, 1.6 s / 11 each), test_b (0.6 s) closes the first half
        assert parts[0] == everything[:11] and parts[1] == everything[11:]


def test_bad_shard_values_and_conflicts_are_usage_errors(plain):
    for args, message in (
        (["--shard=5/4"], "--shard 5/4: expected 1 <= I <= N"),
        (["--shard", "x"], "--shard expects I/N"),
        (["--shard=1/2", "--splits=3", "--group=1"], "give one or the other, not both"),
        (["--shard=1/2", "-p", "no:pytest-split"], "--shard needs the pytest-split plugin"),
    ):
        result = plain.runpytest("-p", "conformance.plugin", *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        assert message in result.stderr.str(), args


def test_the_shipped_durations_cover_the_suite():
    durations = json.loads(DURATIONS.read_text(encoding="utf-8"))
    assert len(durations) > 800
    assert all(k.startswith("conformance/tests/") and isinstance(v, float) and v >= 0 for k, v in durations.items())


def test_durations_are_matched_by_the_path_from_the_suites_tests_on():
    """An installed suite's node ids start elsewhere (site-packages): the durations still match."""
    assert shards._test_path("../lib/python3.11/site-packages/conformance/tests/test_x.py::t[cpu]") == (
        "conformance/tests/test_x.py::t[cpu]"
    )
    assert shards._test_path("test_plain.py::t") == "test_plain.py::t"

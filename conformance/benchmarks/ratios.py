"""Ratios within one benchmark run, and the memory figures recorded beside the timings.

Absolute times depend on the machine; the ratio of two variants timed in the
same run (``no_grad`` forward / grad-mode forward) mostly does not.  Every
benchmark stores, in pytest-benchmark's ``extra_info`` under :data:`KEY`, the
comparison it belongs to, its variant, the baseline variant and its device, plus
any memory figures; so the ratios can be computed from a live run or from a
saved pytest-benchmark JSON file alike.  This module does not import torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KEY",
    "BenchmarkFileError",
    "MemoryRow",
    "Ratio",
    "compare_ratios",
    "load_benchmarks",
    "memory_rows",
    "ratios",
    "render_memory",
    "render_ratio_changes",
    "render_ratios",
]

#: The ``extra_info`` key of this suite's annotations of a benchmark.
KEY = "autograd_conformance"


class BenchmarkFileError(Exception):
    """A file that is not a pytest-benchmark JSON file with this suite's annotations."""


@dataclass(frozen=True)
class Ratio:
    comparison: str
    device: str
    variant: str
    baseline: str
    variant_median: float  # seconds
    baseline_median: float

    @property
    def value(self) -> float:
        return self.variant_median / self.baseline_median if self.baseline_median > 0 else math.inf

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.comparison, self.device, self.variant)


@dataclass(frozen=True)
class MemoryRow:
    comparison: str
    device: str
    variant: str
    figures: dict  # name -> bytes or count


#: Keys every annotation carries (``memory`` is optional).
NOTE_KEYS = ("comparison", "device", "variant", "baseline")


def _annotated(benchmarks: Iterable) -> list[tuple[dict, dict]]:
    """``(annotation, stats)`` of every benchmark this suite annotated, in order; malformed entries are skipped."""
    found = []
    for bench in benchmarks:
        if not isinstance(bench, dict):
            continue
        note = (bench.get("extra_info") or {}).get(KEY)
        if isinstance(note, dict) and all(isinstance(note.get(key), str) for key in NOTE_KEYS):
            found.append((note, bench.get("stats") or {}))
    return found


def ratios(benchmarks: Iterable[dict]) -> list[Ratio]:
    """median(variant) / median(baseline) for every non-baseline variant whose baseline ran on the same device."""
    annotated = _annotated(benchmarks)
    medians = {(n["comparison"], n["device"], n["variant"]): s.get("median") for n, s in annotated}
    found = []
    for note, stats in annotated:
        if note["variant"] == note["baseline"] or stats.get("median") is None:
            continue
        baseline = medians.get((note["comparison"], note["device"], note["baseline"]))
        if baseline is None:
            continue  # the baseline did not run (deselected, skipped or disabled)
        found.append(Ratio(note["comparison"], note["device"], note["variant"], note["baseline"], stats["median"], baseline))
    return found


def memory_rows(benchmarks: Iterable[dict]) -> list[MemoryRow]:
    return [
        MemoryRow(n["comparison"], n["device"], n["variant"], dict(n["memory"]))
        for n, _ in _annotated(benchmarks)
        if n.get("memory")
    ]


def load_benchmarks(path: str | Path) -> list[dict]:
    """The ``benchmarks`` list of a file written by ``--benchmark-save`` / ``--benchmark-json``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BenchmarkFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkFileError(f"{path}: not JSON ({exc})") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        raise BenchmarkFileError(f"{path}: not a pytest-benchmark file (no 'benchmarks' list)")
    if not _annotated(benchmarks):
        raise BenchmarkFileError(f"{path}: no benchmark of this suite in it (none carries extra_info[{KEY!r}])")
    return benchmarks


# ----------------------------------------------------------------------------- rendering


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _bytes(value: int) -> str:
    if value < 1024:
        return f"{value} B"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"  # unreachable


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_ratios(found: Sequence[Ratio]) -> list[str]:
    """A Markdown table: comparison, device, variant / baseline, ratio, both medians."""
    rows = [
        (r.comparison, r.device, f"{r.variant} / {r.baseline}", f"{r.value:.2f}", _time(r.variant_median), _time(r.baseline_median))
        for r in found
    ]
    return _table(("comparison", "device", "variant / baseline", "ratio of medians", "variant", "baseline"), rows)


def render_memory(rows: Sequence[MemoryRow]) -> list[str]:
    """A Markdown table: comparison, device, variant, then each figure as ``name value`` (bytes in KiB/MiB)."""
    body = [
        (row.comparison, row.device, row.variant, ", ".join(f"{name} {_figure(name, value)}" for name, value in row.figures.items()))
        for row in rows
    ]
    return _table(("comparison", "device", "variant", "memory"), body)


def _figure(name: str, value) -> str:
    if value is None:
        return "n/a"
    return _bytes(value) if name.endswith("bytes") else str(value)


def compare_ratios(old: Sequence[Ratio], new: Sequence[Ratio]) -> list[tuple[Ratio, Ratio, float]]:
    """``(old, new, relative change)`` for every ratio present in both runs, in the new run's order."""
    before = {r.key: r for r in old}
    return [
        (before[r.key], r, r.value / before[r.key].value - 1.0)
        for r in new
        if r.key in before and 0 < before[r.key].value < math.inf  # a degenerate old ratio compares to nothing
    ]


def render_ratio_changes(changes: Sequence[tuple[Ratio, Ratio, float]], *, flagged: set | None = None) -> list[str]:
    flagged = flagged or set()
    rows = [
        (
            new.comparison,
            new.device,
            f"{new.variant} / {new.baseline}",
            f"{old.value:.2f}",
            f"{new.value:.2f}",
            f"{change:+.0%}" + (" **over the limit**" if new.key in flagged else ""),
        )
        for old, new, change in changes
    ]
    return _table(("comparison", "device", "variant / baseline", "old ratio", "new ratio", "change"), rows)

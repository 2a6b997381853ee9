"""Ratios of a saved benchmark run: ``conformance/benchmarks/ratios.py`` and ``python -m conformance ratios``.

The input files are built in ``tmp_path`` in the shape pytest-benchmark writes
with ``--benchmark-json`` / ``--benchmark-save``; :func:`entry` builds one
benchmark of it, annotated the way ``conformance/benchmarks/conftest.py``
annotates the suite's benchmarks.  Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.benchmarks.ratios import (
    KEY,
    BenchmarkFileError,
    MemoryRow,
    Ratio,
    compare_ratios,
    load_benchmarks,
    memory_rows,
    ratios,
    render_memory,
    render_ratio_changes,
    render_ratios,
)
from conformance.reporting.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------- builders


def entry(
    variant: str,
    median: float | None,
    *,
    comparison: str = "forward mlp",
    baseline: str = "grad",
    device: str = "cpu",
    memory: dict | None = None,
) -> dict:
    """One benchmark as pytest-benchmark writes it, annotated by this suite (``median`` None: no median in stats)."""
    note: dict = {"device": device, "comparison": comparison, "variant": variant, "baseline": baseline}
    if memory is not None:
        note["memory"] = memory
    stats: dict = {"min": 0.5e-4, "max": 3e-4, "mean": 1.1e-4, "stddev": 1e-5, "rounds": 100, "iqr": 1e-5, "ops": 1e4}
    if median is not None:
        stats["median"] = median
    return {
        "group": f"{comparison} [{device}]",
        "name": f"test_{comparison.replace(' ', '_')}[{device}-{variant}]",
        "fullname": f"conformance/benchmarks/test_forward_modes.py::test_{variant}[{device}]",
        "params": {"device": device},
        "param": device,
        "extra_info": {KEY: note},
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "warmup": False},
        "stats": stats,
    }


def foreign(name: str = "test_someone_elses", median: float = 1e-3) -> dict:
    """A benchmark without this suite's annotation (another plugin's, or a plain ``benchmark`` fixture user)."""
    return {"group": None, "name": name, "fullname": f"x.py::{name}", "extra_info": {}, "stats": {"median": median}}


def benchmark_file(benchmarks: list) -> dict:
    return {
        "machine_info": {"node": "box", "processor": "x86_64", "python_version": "3.11.9"},
        "commit_info": {"id": "0123abc", "dirty": False},
        "benchmarks": benchmarks,
        "datetime": "2025-01-01T00:00:00",
        "version": "5.1.0",
    }


def write_run(tmp_path: Path, name: str, benchmarks: list) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(benchmark_file(benchmarks)), encoding="utf-8")
    return str(path)


def run_with_ratio(value: float, *, variant: str = "no_grad", comparison: str = "forward mlp") -> list[dict]:
    """A baseline of median 1 s and one variant whose ratio to it is ``value`` (exact in binary floating point)."""
    return [entry("grad", 1.0, comparison=comparison), entry(variant, value, comparison=comparison)]


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def table_rows(lines: list[str] | str) -> list[list[str]]:
    """The body rows of the Markdown tables in ``lines``, as lists of cells (header and rule rows left out)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines if line.startswith("| ")]
    return [row for row in rows if row[0] != "comparison" and set(row) != {"---"}]


def row_starting(text: str, *first_cells: str) -> list[str]:
    for row in table_rows(text):
        if row[: len(first_cells)] == list(first_cells):
            return row
    raise AssertionError(f"no table row starts with {first_cells!r} in:\n{text}")


# ----------------------------------------------------------------------------- ratios()


def test_ratio_is_variant_median_over_baseline_median_on_the_same_device():
    found = ratios([entry("grad", 2e-4), entry("no_grad", 5e-5)])
    assert found == [Ratio("forward mlp", "cpu", "no_grad", "grad", 5e-5, 2e-4)]
    assert found[0].value == pytest.approx(0.25)
    assert found[0].key == ("forward mlp", "cpu", "no_grad")


def test_baseline_listed_after_its_variant_still_gives_the_ratio():
    [ratio] = ratios([entry("no_grad", 3.0), entry("grad", 2.0)])
    assert (ratio.variant, ratio.baseline, ratio.value) == ("no_grad", "grad", 1.5)


def test_the_baseline_itself_yields_no_ratio():
    assert ratios([entry("grad", 1e-4)]) == []
    assert [r.variant for r in ratios([entry("grad", 1e-4), entry("no_grad", 1e-4)])] == ["no_grad"]


def test_variant_whose_baseline_did_not_run_yields_no_ratio():
    assert ratios([entry("no_grad", 1e-4), entry("inference_mode", 1e-4)]) == []


def test_variant_whose_baseline_ran_on_another_device_yields_no_ratio():
    benchmarks = [entry("grad", 1e-4, device="cuda"), entry("no_grad", 5e-5, device="cpu")]
    assert ratios(benchmarks) == []


def test_each_device_pairs_with_its_own_baseline():
    benchmarks = [
        entry("grad", 4.0, device="cpu"),
        entry("grad", 2.0, device="cuda"),
        entry("no_grad", 1.0, device="cuda"),
        entry("no_grad", 2.0, device="cpu"),
    ]
    assert [(r.device, r.value) for r in ratios(benchmarks)] == [("cuda", 0.5), ("cpu", 0.5)]


def test_each_comparison_pairs_with_its_own_baseline():
    benchmarks = [
        entry("grad", 1.0, comparison="forward mlp"),
        entry("grad", 4.0, comparison="forward conv"),
        entry("no_grad", 2.0, comparison="forward conv"),
        entry("no_grad", 3.0, comparison="forward mlp"),
    ]
    assert [(r.comparison, r.value) for r in ratios(benchmarks)] == [("forward conv", 0.5), ("forward mlp", 3.0)]


def test_several_variants_share_one_baseline_in_input_order():
    benchmarks = [entry("inference_mode", 1.0), entry("grad", 4.0), entry("no_grad", 2.0)]
    assert [(r.variant, r.value) for r in ratios(benchmarks)] == [("inference_mode", 0.25), ("no_grad", 0.5)]


def test_benchmarks_without_the_annotation_are_ignored():
    unannotated = [foreign(), {"name": "no extra_info", "stats": {"median": 1.0}}, dict(foreign(), extra_info=None)]
    other_key = {"name": "other plugin", "extra_info": {"something_else": {"variant": "grad"}}, "stats": {"median": 1}}
    benchmarks = [*unannotated, other_key, entry("grad", 2.0), entry("no_grad", 1.0)]
    assert [r.value for r in ratios(benchmarks)] == [0.5]
    assert ratios(unannotated + [other_key]) == []


def test_variant_without_a_median_yields_no_ratio():
    assert ratios([entry("grad", 1.0), entry("no_grad", None)]) == []


def test_baseline_without_a_median_yields_no_ratio():
    assert ratios([entry("grad", None), entry("no_grad", 1.0)]) == []


def test_zero_baseline_median_gives_an_infinite_ratio():
    [ratio] = ratios([entry("grad", 0.0), entry("no_grad", 1e-4)])
    assert ratio.baseline_median == 0.0
    assert ratio.value == math.inf


@pytest.mark.parametrize("variant_median", [0.0, 1e-4])
def test_ratio_value_is_inf_when_baseline_median_is_zero(variant_median):
    assert Ratio("c", "cpu", "v", "b", variant_median, 0.0).value == math.inf


def test_zero_variant_median_gives_a_zero_ratio():
    assert Ratio("c", "cpu", "v", "b", 0.0, 1e-4).value == 0.0


def test_ratios_accepts_any_iterable():
    assert [r.value for r in ratios(iter([entry("grad", 2.0), entry("no_grad", 1.0)]))] == [0.5]


# ----------------------------------------------------------------------------- memory_rows()


def test_memory_rows_carry_the_figures_of_every_annotated_benchmark_with_some():
    benchmarks = [
        entry("grad", 1e-4, memory={"saved_bytes": 2048, "saved_tensors": 3}),
        entry("no_grad", 5e-5, memory={"saved_bytes": 0, "saved_tensors": 0}),
        entry("inference_mode", 4e-5),  # no memory figures recorded
        entry("other", 1e-4, memory={}),  # an empty set of figures is no row
        foreign(),
    ]
    assert memory_rows(benchmarks) == [
        MemoryRow("forward mlp", "cpu", "grad", {"saved_bytes": 2048, "saved_tensors": 3}),
        MemoryRow("forward mlp", "cpu", "no_grad", {"saved_bytes": 0, "saved_tensors": 0}),
    ]


def test_memory_rows_do_not_need_a_baseline_nor_a_median():
    rows = memory_rows([entry("no_grad", None, device="cuda", memory={"peak_bytes": 10})])
    assert rows == [MemoryRow("forward mlp", "cuda", "no_grad", {"peak_bytes": 10})]


def test_memory_rows_copy_the_figures():
    bench = entry("grad", 1e-4, memory={"saved_bytes": 1})
    [row] = memory_rows([bench])
    bench["extra_info"][KEY]["memory"]["saved_bytes"] = 99
    assert row.figures == {"saved_bytes": 1}


# ----------------------------------------------------------------------------- load_benchmarks()


def test_load_benchmarks_returns_the_benchmarks_list_unchanged(tmp_path):
    benchmarks = [foreign(), entry("grad", 1e-4), entry("no_grad", 5e-5, memory={"saved_bytes": 0})]
    assert load_benchmarks(write_run(tmp_path, "run.json", benchmarks)) == benchmarks


def test_load_benchmarks_accepts_a_path_object(tmp_path):
    path = Path(write_run(tmp_path, "run.json", run_with_ratio(0.5)))
    assert [r.value for r in ratios(load_benchmarks(path))] == [0.5]


def test_file_with_only_baselines_is_accepted(tmp_path):
    """Annotated but without a ratio (the variants were deselected): still this suite's file."""
    assert len(load_benchmarks(write_run(tmp_path, "run.json", [entry("grad", 1e-4)]))) == 1


BAD_FILES = {
    "not JSON": ("{not json", "not JSON ("),
    "empty file": ("", "not JSON ("),
    "top level is a list": ("[1, 2]", "not a pytest-benchmark file (no 'benchmarks' list)"),
    "top level is a number": ("3", "not a pytest-benchmark file (no 'benchmarks' list)"),
    "no benchmarks key": (json.dumps({"machine_info": {}}), "not a pytest-benchmark file (no 'benchmarks' list)"),
    "benchmarks not a list": (json.dumps({"benchmarks": {}}), "not a pytest-benchmark file (no 'benchmarks' list)"),
    "benchmarks null": (json.dumps({"benchmarks": None}), "not a pytest-benchmark file (no 'benchmarks' list)"),
    "empty benchmarks": (json.dumps(benchmark_file([])), "no benchmark of this suite in it"),
    "only unannotated benchmarks": (
        json.dumps(benchmark_file([foreign("a"), foreign("b")])),
        "no benchmark of this suite in it (none carries extra_info['autograd_conformance'])",
    ),
    "empty annotation": (
        json.dumps(benchmark_file([dict(foreign(), extra_info={KEY: {}})])),
        "no benchmark of this suite in it",
    ),
}


@pytest.mark.parametrize("problem", list(BAD_FILES))
def test_bad_file_is_a_benchmark_file_error_naming_the_path(problem, tmp_path):
    content, expected = BAD_FILES[problem]
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BenchmarkFileError) as info:
        load_benchmarks(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file_is_a_benchmark_file_error_naming_the_path(tmp_path):
    path = tmp_path / "no-such-run.json"
    with pytest.raises(BenchmarkFileError, match="cannot read") as info:
        load_benchmarks(str(path))
    assert str(info.value).startswith(f"{path}: cannot read (")
    assert "No such file" in str(info.value)


def test_directory_is_a_benchmark_file_error(tmp_path):
    with pytest.raises(BenchmarkFileError) as info:
        load_benchmarks(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: cannot read (")


def test_binary_file_is_a_benchmark_file_error(tmp_path):
    path = tmp_path / "run.json.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\xff\xfe binary")
    with pytest.raises(BenchmarkFileError, match=re.escape(str(path))):
        load_benchmarks(path)


def test_benchmarks_list_of_non_objects_is_a_benchmark_file_error(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"benchmarks": [1, "two"]}), encoding="utf-8")
    with pytest.raises(BenchmarkFileError, match=re.escape(str(path))):
        load_benchmarks(path)


def test_benchmark_file_error_is_an_exception_not_an_os_error():
    assert issubclass(BenchmarkFileError, Exception)
    assert not issubclass(BenchmarkFileError, OSError)


# ----------------------------------------------------------------------------- render_ratios()


def test_render_ratios_is_a_markdown_table_with_ratio_and_both_medians():
    lines = render_ratios([Ratio("forward mlp", "cpu", "no_grad", "grad", 5e-5, 2e-4)])
    assert lines == [
        "| comparison | device | variant / baseline | ratio of medians | variant | baseline |",
        "| --- | --- | --- | --- | --- | --- |",
        "| forward mlp | cpu | no_grad / grad | 0.25 | 50 us | 200 us |",
    ]


def test_render_ratios_without_ratios_is_the_header_alone():
    assert len(render_ratios([])) == 2


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (2.5, "2.5 s"),
        (1.0, "1 s"),
        (0.0123, "12.3 ms"),
        (1e-3, "1 ms"),
        (4.56e-5, "45.6 us"),
        (1e-6, "1 us"),
        (7.5e-7, "750 ns"),
        (0.0, "0 ns"),
    ],
)
def test_render_ratios_shows_medians_in_a_fitting_unit(seconds, shown):
    [row] = table_rows(render_ratios([Ratio("c", "cpu", "v", "b", seconds, 1.0)]))
    assert row[4] == shown


@pytest.mark.parametrize(("variant", "baseline", "shown"), [(1.0, 3.0, "0.33"), (2.0, 1.0, "2.00"), (1e-4, 0.0, "inf")])
def test_render_ratios_shows_the_ratio_with_two_decimals(variant, baseline, shown):
    [row] = table_rows(render_ratios([Ratio("c", "cpu", "v", "b", variant, baseline)]))
    assert row[3] == shown


def test_render_ratios_keeps_the_order_given():
    found = [Ratio("b", "cpu", "v", "g", 1.0, 1.0), Ratio("a", "cuda", "w", "g", 1.0, 2.0)]
    assert [row[:3] for row in table_rows(render_ratios(found))] == [["b", "cpu", "v / g"], ["a", "cuda", "w / g"]]


# ----------------------------------------------------------------------------- render_memory()


def test_render_memory_is_a_markdown_table_with_the_figures_in_order():
    lines = render_memory([MemoryRow("forward mlp", "cpu", "grad", {"saved_bytes": 2048, "saved_tensors": 3})])
    assert lines == [
        "| comparison | device | variant | memory |",
        "| --- | --- | --- | --- |",
        "| forward mlp | cpu | grad | saved_bytes 2.0 KiB, saved_tensors 3 |",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * 1024 + 512, "10.5 KiB"),
        (1 << 20, "1.0 MiB"),
        (5 * (1 << 20) + (1 << 19), "5.5 MiB"),
        (1 << 30, "1.0 GiB"),
        (3 * (1 << 30), "3.0 GiB"),
    ],
)
def test_render_memory_shows_bytes_figures_in_b_kib_mib(value, shown):
    [row] = table_rows(render_memory([MemoryRow("c", "cpu", "v", {"peak_bytes": value})]))
    assert row[3] == f"peak_bytes {shown}"


@pytest.mark.parametrize("name", ["saved_tensors", "nodes", "bytes_per_tensor", "bytesize"])
def test_render_memory_shows_figures_not_ending_in_bytes_as_plain_numbers(name):
    [row] = table_rows(render_memory([MemoryRow("c", "cpu", "v", {name: 4096})]))
    assert row[3] == f"{name} 4096"


def test_render_memory_shows_a_missing_figure_as_n_a():
    [row] = table_rows(render_memory([MemoryRow("c", "cuda", "v", {"peak_bytes": None, "saved_tensors": None})]))
    assert row[3] == "peak_bytes n/a, saved_tensors n/a"


def test_render_memory_without_rows_is_the_header_alone():
    assert len(render_memory([])) == 2


# ------------------------------------------------------------------- compare_ratios() and render_ratio_changes()


def ratio(
    variant_median: float, baseline_median: float = 1.0, *, variant="no_grad", comparison="forward mlp", device="cpu"
) -> Ratio:
    return Ratio(comparison, device, variant, "grad", variant_median, baseline_median)


def test_compare_ratios_gives_the_relative_change_of_each_common_ratio():
    old, new = [ratio(0.5)], [ratio(0.75)]
    assert compare_ratios(old, new) == [(old[0], new[0], pytest.approx(0.5))]


def test_compare_ratios_compares_ratios_not_medians():
    """Both medians doubled on a slower machine: the ratio, hence the change, is the same."""
    [(_, _, change)] = compare_ratios([ratio(1.0, 2.0)], [ratio(2.0, 4.0)])
    assert change == 0.0


def test_compare_ratios_matches_by_comparison_device_and_variant_in_the_new_runs_order():
    old = [
        ratio(1.0, variant="a"),
        ratio(1.0, variant="b"),
        ratio(1.0, variant="a", device="cuda"),
        ratio(1.0, variant="a", comparison="backward"),
        ratio(1.0, variant="only_old"),
    ]
    new = [
        ratio(3.0, variant="a", comparison="backward"),
        ratio(0.5, variant="b"),
        ratio(2.0, variant="a"),
        ratio(1.0, variant="only_new"),
        ratio(1.5, variant="a", device="cuda"),
    ]
    changes = compare_ratios(old, new)
    assert [(n.key, change) for o, n, change in changes] == [
        (("backward", "cpu", "a"), 2.0),
        (("forward mlp", "cpu", "b"), -0.5),
        (("forward mlp", "cpu", "a"), 1.0),
        (("forward mlp", "cuda", "a"), 0.5),
    ]
    assert all(o.key == n.key for o, n, _ in changes)


def test_compare_ratios_without_common_ratios_is_empty():
    assert compare_ratios([ratio(1.0, variant="a")], [ratio(1.0, variant="b")]) == []
    assert compare_ratios([], [ratio(1.0)]) == []
    assert compare_ratios([ratio(1.0)], []) == []


def test_compare_ratios_skips_an_old_ratio_of_zero():
    """No relative change from zero."""
    assert compare_ratios([ratio(0.0)], [ratio(1.0)]) == []


def test_compare_ratios_from_a_finite_to_an_infinite_ratio_is_an_infinite_increase():
    [(_, _, change)] = compare_ratios([ratio(1.0)], [ratio(1.0, 0.0)])
    assert change == math.inf


def test_render_ratio_changes_shows_old_new_and_signed_percent_change():
    changes = compare_ratios([ratio(0.5), ratio(2.0, variant="v")], [ratio(0.75), ratio(1.5, variant="v")])
    lines = render_ratio_changes(changes)
    assert lines == [
        "| comparison | device | variant / baseline | old ratio | new ratio | change |",
        "| --- | --- | --- | --- | --- | --- |",
        "| forward mlp | cpu | no_grad / grad | 0.50 | 0.75 | +50% |",
        "| forward mlp | cpu | v / grad | 2.00 | 1.50 | -25% |",
    ]
    assert "over the limit" not in "\n".join(lines)


def test_render_ratio_changes_shows_no_change_as_plus_zero():
    [row] = table_rows(render_ratio_changes(compare_ratios([ratio(1.0)], [ratio(1.0)])))
    assert row[5] == "+0%"


def test_render_ratio_changes_marks_flagged_rows_over_the_limit():
    new_a, new_b = ratio(2.0, variant="a"), ratio(1.1, variant="b")
    changes = compare_ratios([ratio(1.0, variant="a"), ratio(1.0, variant="b")], [new_a, new_b])
    rows = table_rows(render_ratio_changes(changes, flagged={new_a.key}))
    assert rows[0][5] == "+100% **over the limit**"
    assert rows[1][5] == "+10%"


def test_render_ratio_changes_flags_by_key_only():
    changes = compare_ratios([ratio(1.0)], [ratio(2.0)])
    assert table_rows(render_ratio_changes(changes, flagged={("forward mlp", "cuda", "no_grad")}))[0][5] == "+100%"
    assert table_rows(render_ratio_changes(changes, flagged=set()))[0][5] == "+100%"
    assert table_rows(render_ratio_changes(changes, flagged=None))[0][5] == "+100%"


# ----------------------------------------------------------------------------- python -m conformance ratios RUN


def test_cli_one_run_prints_the_ratio_table_and_memory(tmp_path, capsys):
    path = write_run(
        tmp_path,
        "run.json",
        [
            entry("grad", 2e-4, memory={"saved_bytes": 2048, "saved_tensors": 3}),
            entry("no_grad", 5e-5, memory={"saved_bytes": 0, "saved_tensors": 0}),
            foreign(),
        ],
    )
    status, out, err = run_cli(capsys, "ratios", path)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Ratios in {path} (median of the variant / median of its baseline):"
    assert row_starting(out, "forward mlp", "cpu", "no_grad / grad") == [
        "forward mlp", "cpu", "no_grad / grad", "0.25", "50 us", "200 us",
    ]  # fmt: skip
    assert "Memory:" in lines
    memory = "\n".join(lines[lines.index("Memory:") :])
    assert row_starting(memory, "forward mlp", "cpu", "grad")[3] == "saved_bytes 2.0 KiB, saved_tensors 3"
    assert row_starting(memory, "forward mlp", "cpu", "no_grad")[3] == "saved_bytes 0 B, saved_tensors 0"
    assert "test_someone_elses" not in out
    assert out.endswith("\n")


def test_cli_one_run_without_memory_figures_has_no_memory_section(tmp_path, capsys):
    status, out, _ = run_cli(capsys, "ratios", write_run(tmp_path, "run.json", run_with_ratio(0.5)))
    assert status == 0
    assert "Memory" not in out
    assert [row[3] for row in table_rows(out)] == ["0.50"]


def test_cli_one_run_with_only_baselines_prints_an_empty_table(tmp_path, capsys):
    status, out, err = run_cli(capsys, "ratios", write_run(tmp_path, "run.json", [entry("grad", 1e-4)]))
    assert (status, err) == (0, "")
    assert table_rows(out) == []
    assert "| comparison | device | variant / baseline |" in out


def test_cli_one_run_writes_to_output_file(tmp_path, capsys):
    path = write_run(tmp_path, "run.json", run_with_ratio(0.5))
    target = tmp_path / "ratios.md"
    status, out, err = run_cli(capsys, "ratios", path, "-o", str(target))
    assert (status, out, err) == (0, "", "")
    assert target.read_text(encoding="utf-8").startswith(f"Ratios in {path}")


# ----------------------------------------------------------------------------- python -m conformance ratios OLD NEW


def test_cli_two_runs_print_old_new_and_change_and_exit_0_without_a_limit(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(0.5))
    new = write_run(tmp_path, "new.json", run_with_ratio(2.0))  # +300%: no limit, no failure
    status, out, err = run_cli(capsys, "ratios", old, new)
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == f"Ratios: {old} -> {new}"
    assert "limit" not in out
    assert row_starting(out, "forward mlp", "cpu", "no_grad / grad") == [
        "forward mlp", "cpu", "no_grad / grad", "0.50", "2.00", "+300%",
    ]  # fmt: skip


@pytest.mark.parametrize("limit", ["50", "50%", "50.0", " 50 % "])
def test_cli_max_increase_exits_1_when_a_ratio_grew_more(limit, tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0) + run_with_ratio(1.0, comparison="backward mlp"))
    new = write_run(tmp_path, "new.json", run_with_ratio(1.75) + run_with_ratio(1.25, comparison="backward mlp"))
    status, out, err = run_cli(capsys, "ratios", old, new, "--max-increase", limit)
    assert (status, err) == (1, "")
    assert out.splitlines()[0] == f"Ratios: {old} -> {new} (limit: +50%)"
    assert row_starting(out, "forward mlp")[5] == "+75% **over the limit**"
    assert row_starting(out, "backward mlp")[5] == "+25%"
    assert out.count("over the limit") == 1
    assert "1 ratio(s) grew by more than 50%." in out.splitlines()


@pytest.mark.parametrize("limit", ["50", "50%"])
@pytest.mark.parametrize(
    ("old_ratio", "new_ratio"),
    [(1.0, 1.5), (1.0, 1.25), (1.0, 1.0), (2.0, 1.0)],
    ids=["exactly-the-limit", "below", "unchanged", "improved"],
)
def test_cli_max_increase_exits_0_when_no_ratio_grew_more(old_ratio, new_ratio, limit, tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(old_ratio))
    new = write_run(tmp_path, "new.json", run_with_ratio(new_ratio))
    status, out, err = run_cli(capsys, "ratios", old, new, "--max-increase", limit)
    assert (status, err) == (0, "")
    assert "(limit: +50%)" in out.splitlines()[0]
    assert "over the limit" not in out
    assert "grew by more than" not in out


def test_cli_max_increase_zero_flags_any_increase(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0) + run_with_ratio(1.0, variant="inference_mode"))
    new = write_run(tmp_path, "new.json", run_with_ratio(1.0) + run_with_ratio(1.125, variant="inference_mode"))
    status, out, _ = run_cli(capsys, "ratios", old, new, "--max-increase=0")
    assert status == 1
    assert row_starting(out, "forward mlp", "cpu", "no_grad / grad")[5] == "+0%"
    assert row_starting(out, "forward mlp", "cpu", "inference_mode / grad")[5] == "+12% **over the limit**"


def test_cli_max_increase_counts_every_flagged_ratio(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0) + run_with_ratio(1.0, variant="inference_mode"))
    new = write_run(tmp_path, "new.json", run_with_ratio(2.0) + run_with_ratio(3.0, variant="inference_mode"))
    status, out, _ = run_cli(capsys, "ratios", old, new, "--max-increase", "10")
    assert status == 1
    assert out.count("**over the limit**") == 2
    assert "2 ratio(s) grew by more than 10%." in out


def test_cli_compares_only_the_ratios_both_runs_have(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0) + run_with_ratio(1.0, variant="only_old"))
    new = write_run(tmp_path, "new.json", run_with_ratio(1.0) + run_with_ratio(9.0, variant="only_new"))
    status, out, _ = run_cli(capsys, "ratios", old, new, "--max-increase", "50")
    assert status == 0
    assert [row[2] for row in table_rows(out)] == ["no_grad / grad"]


def test_cli_two_runs_on_different_devices_have_no_ratio_in_common(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", [entry("grad", 1.0, device="cpu"), entry("no_grad", 1.0, device="cpu")])
    new = write_run(tmp_path, "new.json", [entry("grad", 1.0, device="cuda"), entry("no_grad", 1.0, device="cuda")])
    status, out, err = run_cli(capsys, "ratios", old, new)
    assert (status, out) == (2, "")
    assert err == f"error: {old} and {new} have no ratio in common\n"


def test_cli_two_runs_without_ratios_have_no_ratio_in_common(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", [entry("grad", 1.0)])
    new = write_run(tmp_path, "new.json", [entry("grad", 2.0)])
    status, out, err = run_cli(capsys, "ratios", old, new, "--max-increase", "50")
    assert (status, out) == (2, "")
    assert err == f"error: {old} and {new} have no ratio in common\n"


# ----------------------------------------------------------------------------- python -m conformance ratios: bad input


def test_cli_max_increase_with_one_run_is_an_error(tmp_path, capsys):
    path = write_run(tmp_path, "run.json", run_with_ratio(0.5))
    status, out, err = run_cli(capsys, "ratios", path, "--max-increase", "50")
    assert (status, out) == (2, "")
    assert err == "error: --max-increase needs two runs: RUN and NEW\n"


@pytest.mark.parametrize("position", ["first", "second"])
def test_cli_missing_file_is_one_error_line(position, tmp_path, capsys):
    good = write_run(tmp_path, "run.json", run_with_ratio(0.5))
    missing = str(tmp_path / "no-such-run.json")
    argv = ["ratios", missing, good] if position == "first" else ["ratios", good, missing]
    status, out, err = run_cli(capsys, *argv)
    assert (status, out) == (2, "")
    assert err.startswith(f"error: {missing}: cannot read (")
    assert len(err.splitlines()) == 1


def test_cli_missing_single_file_is_one_error_line(tmp_path, capsys):
    missing = str(tmp_path / "no-such-run.json")
    status, out, err = run_cli(capsys, "ratios", missing)
    assert (status, out) == (2, "")
    assert err.startswith(f"error: {missing}: cannot read (") and len(err.splitlines()) == 1


@pytest.mark.parametrize("problem", ["not JSON", "no benchmarks key", "only unannotated benchmarks"])
def test_cli_bad_file_is_one_error_line(problem, tmp_path, capsys):
    content, expected = BAD_FILES[problem]
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    status, out, err = run_cli(capsys, "ratios", str(path))
    assert (status, out) == (2, "")
    assert err.startswith(f"error: {path}: ") and expected in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "must be a finite, non-negative percentage: '-5'"),
        ("-0.5%", "must be a finite, non-negative percentage: '-0.5%'"),
        ("fifty", "not a percentage: 'fifty'"),
        ("", "not a percentage: ''"),
        ("50 percent", "not a percentage: '50 percent'"),
    ],
)
def test_cli_bad_percentage_is_a_usage_error(value, message, tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0))
    new = write_run(tmp_path, "new.json", run_with_ratio(2.0))
    status, out, err = run_cli(capsys, "ratios", old, new, f"--max-increase={value}")
    assert (status, out) == (2, "")
    assert "usage:" in err
    assert "--max-increase" in err and message in err


def test_cli_nan_percentage_is_a_usage_error(tmp_path, capsys):
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0))
    new = write_run(tmp_path, "new.json", run_with_ratio(100.0))
    status, _, err = run_cli(capsys, "ratios", old, new, "--max-increase", "nan")
    assert status == 2
    assert "usage:" in err


def test_cli_ratios_needs_a_run(capsys):
    status, out, err = run_cli(capsys, "ratios")
    assert (status, out) == (2, "")
    assert "usage:" in err


def test_python_m_conformance_ratios_gate_exits_1(tmp_path):
    """The one subprocess: the exit status reaches the shell through ``python -m conformance``."""
    old = write_run(tmp_path, "old.json", run_with_ratio(1.0))
    new = write_run(tmp_path, "new.json", run_with_ratio(2.0))
    completed = subprocess.run(
        [sys.executable, "-m", "conformance", "ratios", old, new, "--max-increase", "50%"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "+100% **over the limit**" in completed.stdout
    assert completed.stderr == ""

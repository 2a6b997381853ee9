"""Fixtures and report hooks of the benchmarks.

``bench`` wraps pytest-benchmark's ``benchmark`` fixture: it names the
comparison a benchmark belongs to (``bench.compare("forward mlp", "no_grad",
baseline="grad")``), synchronizes accelerators inside the timed call, warms up,
and records memory figures beside the timing.  At the end of the run the ratios
of each variant to its baseline, and the memory figures, are printed after
pytest-benchmark's table and written into its JSON (``--benchmark-save``,
``--benchmark-json``) under ``"autograd_conformance"``.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch

from conformance.benchmarks.ratios import KEY, memory_rows, ratios, render_memory, render_ratios

_RESULTS = pytest.StashKey[list]()
_THREADS = pytest.StashKey[int]()  # torch intra-op threads the benchmarks ran with

#: Untimed calls before timing starts (caches, allocator pools, lazy initialisation).
WARMUP_CALLS = 3


def synchronizer(device: str) -> Callable[[], None]:
    """What makes queued work on ``device`` finish: timing an asynchronous device without it times the launch."""
    kind = torch.device(device).type
    if kind == "cpu":
        return lambda: None
    if kind == "cuda":
        return lambda: torch.cuda.synchronize(device)
    # mps, and any backend with a device module (torch.<type>.synchronize): out-of-tree
    # backends register one with torch._register_device_module
    module = getattr(torch, kind, None)
    sync = getattr(module, "synchronize", None)
    if not callable(sync):
        raise RuntimeError(f"cannot time {device}: torch.{kind}.synchronize does not exist, so queued work could not be waited for")
    return sync


def peak_memory(device: str, fn: Callable[[], Any]) -> int | None:
    """Peak bytes allocated on ``device`` while ``fn`` runs, above what was allocated before; None where torch has no such counter (CPU, MPS)."""
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


class Bench:
    """One variant of one comparison, timed on one device."""

    def __init__(self, benchmark, device: str) -> None:
        self._benchmark = benchmark
        self.device = device
        self._sync = synchronizer(device)
        self._note: dict[str, Any] = {"device": device}

    def compare(self, comparison: str, variant: str, *, baseline: str) -> Bench:
        """Declare what this benchmark is: ``variant`` of ``comparison``, reported as a ratio to ``baseline``."""
        self._note.update(comparison=comparison, variant=variant, baseline=baseline)
        self._benchmark.group = f"{comparison} [{self.device}]"
        return self

    def memory(self, **figures: int | None) -> None:
        """Record memory figures (names ending in ``bytes`` are byte counts); a None figure (not measurable here) is left out."""
        self._note.setdefault("memory", {}).update({name: value for name, value in figures.items() if value is not None})

    def _synchronized(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args):
            result = fn(*args)
            self._sync()
            return result

        return run

    def __call__(self, fn: Callable[[], Any]) -> Any:
        """Time ``fn()`` (pytest-benchmark calibrates rounds and iterations)."""
        self._check_declared()
        timed = self._synchronized(fn)
        for _ in range(WARMUP_CALLS):
            timed()
        return self._benchmark(timed)

    def with_setup(self, fn: Callable[..., Any], setup: Callable[[], tuple], *, rounds: int) -> Any:
        """Time ``fn(*setup())`` for ``rounds`` rounds, ``setup`` untimed before each (state a call consumes, such as a graph)."""
        self._check_declared()
        timed = self._synchronized(fn)

        def untimed_setup():
            args = setup()
            self._sync()
            return args, {}

        return self._benchmark.pedantic(timed, setup=untimed_setup, rounds=rounds, warmup_rounds=WARMUP_CALLS)

    def _check_declared(self) -> None:
        if "comparison" not in self._note:
            raise RuntimeError("call bench.compare(comparison, variant, baseline=...) before timing")

    def finish(self) -> dict | None:
        self._benchmark.extra_info[KEY] = self._note
        stats = getattr(self._benchmark, "stats", None)
        if stats is None:  # --benchmark-disable, or the benchmark failed
            return None
        values = stats.stats
        return {
            "extra_info": {KEY: self._note},
            "stats": {"median": values.median, "iqr": values.iqr, "min": values.min, "rounds": values.rounds},
        }


@pytest.fixture(scope="session", autouse=True)
def torch_threads(request) -> int:
    """Run the benchmarks with ``--benchmark-torch-threads`` intra-op threads (default 1); torch's setting is restored after."""
    wanted = request.config.getoption("benchmark_torch_threads")
    before = torch.get_num_threads()
    if wanted > 0:
        torch.set_num_threads(wanted)
    request.config.stash[_THREADS] = torch.get_num_threads()
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def bench(benchmark, device, request) -> Bench:
    """Time one variant of a comparison on ``device``; see :class:`Bench`."""
    timer = Bench(benchmark, device)
    yield timer
    result = timer.finish()
    if result is not None:
        request.config.stash.setdefault(_RESULTS, []).append(result)


@pytest.hookimpl(wrapper=True)
def pytest_terminal_summary(terminalreporter, config):
    """After pytest-benchmark's tables (even when its --benchmark-compare-fail check raised): ratios and memory."""
    try:
        return (yield)
    finally:
        results = config.stash.get(_RESULTS, [])
        found, memory = ratios(results), memory_rows(results)
        if found or memory:
            terminalreporter.section("autograd benchmark ratios (median of the variant / median of its baseline, same run)")
            terminalreporter.write_line(f"torch {torch.__version__}, {config.stash.get(_THREADS, '?')} intra-op thread(s)")
            for line in render_ratios(found):
                terminalreporter.write_line(line)
            if memory:
                terminalreporter.write_line("")
                terminalreporter.write_line("memory: tensors saved for backward, counted by saved_tensors_hooks (intermediate: neither a leaf nor a view of one, "
                    "so alive only because of the graph); peak_bytes: the CUDA allocator's peak, on CUDA only")
                for line in render_memory(memory):
                    terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Put the run's ratios and the torch build in the saved JSON (the per-benchmark notes are in extra_info)."""
    results = config.stash.get(_RESULTS, [])
    output_json[KEY] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_threads": config.stash.get(_THREADS, None),
        "ratios": [
            {"comparison": r.comparison, "device": r.device, "variant": r.variant, "baseline": r.baseline, "ratio": r.value}
            for r in ratios(results)
        ],
    }

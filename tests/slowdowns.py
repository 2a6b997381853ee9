"""Deliberately slowed torch builds, to prove the benchmark comparison notices a cost regression.

Loaded as a pytest plugin: ``pytest -p tests.slowdowns --slowdown NAME``.  The
patch is applied when pytest configures the run and undone when it ends;
without ``--slowdown`` this plugin does nothing.  ``tests/test_benchmarks.py``
saves a baseline run of the benchmarks, runs them again with a slowdown and
asserts that ``--benchmark-compare-fail`` (absolute times) and
``python -m conformance ratios --max-increase`` (ratios) flag it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import pytest
import torch

from tests.patching import apply_for_the_run, patch_everywhere, undo_after_the_run

#: Several hundred times an item() call (about 0.3 us on a CPU).
ITEM_DELAY = 200e-6
#: About twenty times the benchmarked MLP forward (about 0.1 ms on a CPU core).
NO_GRAD_DELAY = 2e-3

def _busy_wait(seconds: float) -> None:
    """Busy-waited, not slept: a sleep's wake-up latency varies more than the delay."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@dataclass(frozen=True)
class Slowdown:
    name: str
    slows: str  # the benchmark comparison whose time it regresses
    description: str
    apply: Callable[[pytest.MonkeyPatch], None]


def _item_waits(mp: pytest.MonkeyPatch) -> None:
    original = torch.Tensor.item

    def item(self):
        _busy_wait(ITEM_DELAY)
        return original(self)

    mp.setattr(torch.Tensor, "item", item)


def _no_grad_enter_waits(mp: pytest.MonkeyPatch) -> None:
    class NoGrad(torch.autograd.grad_mode.no_grad):
        def __enter__(self):
            _busy_wait(NO_GRAD_DELAY)
            return super().__enter__()

    patch_everywhere(mp, "no_grad", NoGrad)


SLOWDOWNS = {
    s.name: s
    for s in (
        Slowdown("item_waits", "item() of a one-element tensor", f"Tensor.item() busy-waits {ITEM_DELAY * 1e3:g} ms first", _item_waits),
        Slowdown("no_grad_enter_waits", "forward", f"entering torch.no_grad() busy-waits {NO_GRAD_DELAY * 1e3:g} ms", _no_grad_enter_waits),
    )
}

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slowdown", choices=sorted(SLOWDOWNS), help="slow one torch call down (see tests/slowdowns.py)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("slowdown")
    if name:
        apply_for_the_run(config, SLOWDOWNS[name].apply)


def pytest_unconfigure(config: pytest.Config) -> None:
    undo_after_the_run(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    name = config.getoption("slowdown")
    return f"SLOWDOWN ACTIVE: {name}: {SLOWDOWNS[name].description}" if name else None
